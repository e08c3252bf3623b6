"""`mobilesam-export` command line: export, parity, bench, summary, inspect, serve, segment."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from mobilesam_runtime import MissingExtraError, RandomWeightsWarning
from mobilesam_runtime.manifest import BundleError, signatures, validate_bundle

from . import exporters

EPILOG = """examples:
  mobilesam-export export --format onnx                     # weights/mobile_sam.pt (downloaded if absent)
  mobilesam-export export --format coreml --quant fp16 --weights ~/mobile_sam.pt
  mobilesam-export export --format all --weights random     # offline pipeline check, random weights
  mobilesam-export parity exports/onnx-fp32
  mobilesam-export bench exports/onnx-fp32 exports/openvino-int8
  mobilesam-export inspect exports/onnx-fp32
  mobilesam-export serve exports/web-fp32 --port 8000     # then open http://127.0.0.1:8000/
  mobilesam-export segment exports/onnx-fp32 photos/ --out masks --everything
  mobilesam-export segment exports/onnx-fp32 photos/ --out masks --boxes yolo_labels/ --labels yolo
"""


def _reference_for(bundle: Path, weights: str | None):
    """The eager model a bundle was exported from: random weights are rebuilt from their seed;
    a checkpoint must be given and must match the manifest's sha256."""
    from .checkpoint import CheckpointError, load_model

    w = validate_bundle(bundle, verify=False)["weights"]
    if w.get("random_weights"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            return load_model("random")
    loaded = load_model(weights)
    if loaded.sha256 != w.get("sha256"):
        raise CheckpointError(f"{bundle} was exported from checkpoint sha256 {w.get('sha256')}, "
                              f"but {loaded.source} has {loaded.sha256}: pass --weights with the "
                              f"same checkpoint.")
    return loaded


def cmd_export(args: argparse.Namespace) -> int:
    from .bundle import ExportOptions, check_out_dir, export_bundle
    from .checkpoint import load_model

    formats = exporters.FORMATS if args.format == "all" else (args.format,)
    check_out_dir(args.out)  # before the (slow) model load
    loaded = load_model(args.weights)
    options = ExportOptions(calibration_dir=args.images, official_decoder=args.official_decoder,
                            image_input=args.image_input, num_slots=args.slots,
                            prompt_batch=args.prompt_batch,
                            split_decoder=not args.no_split_decoder)
    failed = []
    for fmt in formats:
        quant = args.quant if args.quant else None
        if quant and quant not in exporters.get(fmt).QUANTS:
            if args.format == "all":
                print(f"skip {fmt}: no {quant} (has {', '.join(exporters.get(fmt).QUANTS)})")
                continue
        try:
            path = export_bundle(loaded, fmt, quant, args.out, options,
                                 run_parity=not args.no_parity, parity_gate=not args.no_parity_gate,
                                 parity_images=args.parity_images)
        except Exception as e:  # report every format, fail at the end
            if len(formats) == 1:
                raise
            print(f"FAILED {fmt}: {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(fmt)
            continue
        print(f"wrote {path}")
    return 1 if failed else 0


def cmd_parity(args: argparse.Namespace) -> int:
    from . import parity

    status = 0
    for b in args.bundles:
        bundle = Path(b)
        loaded = _reference_for(bundle, args.weights)
        try:
            report = parity.check(bundle, loaded.model, args.images, gate=not args.no_gate)
            fmt = json.loads((bundle / "manifest.json").read_text())["format"]
            extra = getattr(exporters.get(fmt), "RUNTIME_PRECISIONS", ()) if fmt in \
                exporters.FORMATS else ()
            if extra and report["passed"]:
                parity.check_runtime_precisions(bundle, loaded.model, extra, args.images)
        except parity.ParityError as e:
            print(f"FAIL: {e}", file=sys.stderr)
            status = 1
    return status


def cmd_summary(args: argparse.Namespace) -> int:
    from .parity import summary_table

    print(summary_table(args.bundles))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.__main__ import main as bench_main

    argv = list(args.bundles) + ["--out", args.out] + (["--no-torch"] if args.no_torch else [])
    return bench_main(argv)


INSPECT_SUMMARY = ("mask_iou_min", "logits_max_abs", "iou_pred_max_abs", "selection_mismatches",
                   "encoder_cosine_min")


def cmd_inspect(args: argparse.Namespace) -> int:
    m = validate_bundle(args.bundle, verify=True)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    w = m["weights"]
    print(f"{args.bundle}: {m['format']} {m['precision']}, exported {m.get('created', '?')}")
    print(f"weights: {'RANDOM (pipeline test only)' if w['random_weights'] else w['source']}"
          f"  sha256 {w['sha256']}")
    for name, f in m["files"].items():
        print(f"  {name:32s} {f['bytes'] / 1e6:8.2f} MB  sha256 {f['sha256'][:16]}… (verified)")
    for graph, sig in signatures(m).items():  # the exported graphs' own shapes
        for io, tensors in (("input", sig.inputs), ("output", sig.outputs)):
            for t in tensors:
                shape = [d if isinstance(d, int) else f"{d.name}:{d.min}..{d.max or ''}"
                         for d in t.shape]
                kind = " (image)" if t.kind == "image" else ""
                print(f"  {graph:8s} {io:6s} {t.name:18s} {str(shape):24s}{kind}")
    p = m.get("parity")
    if p and "summary" in p:
        s = p["summary"]
        print(f"parity: {'PASS' if p['passed'] else 'FAIL'}  "
              + ", ".join(f"{k} {s[k]:.6g}" for k in INSPECT_SUMMARY if k in s))
    elif p:
        print(f"parity: {p}")
    else:
        print("parity: not run")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    try:
        serve(args.bundle, args.host, args.port)
    except OSError as e:
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from e
    except KeyboardInterrupt:
        pass
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    import mobilesam_runtime

    from . import segment

    if args.points:
        prompts = segment.Prompts("points", points=segment.parse_points(args.points))
    elif args.boxes:
        prompts = segment.Prompts("boxes", boxes=segment.load_box_source(Path(args.boxes)))
    images = segment.list_images(args.inputs)
    if not images:
        raise ValueError(f"no images found in {', '.join(args.inputs)}")
    predictor = mobilesam_runtime.load(args.bundle)
    if args.everything:
        prompts = segment.Prompts("everything", generator=mobilesam_runtime.SamAutomaticMaskGenerator(
            predictor, points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
            pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
            box_nms_thresh=args.box_nms_thresh, crop_n_layers=args.crop_n_layers,
            min_mask_region_area=args.min_mask_region_area))
    done, bad = segment.run(predictor, images, Path(args.out), prompts, args.labels,
                            progress=not args.quiet)
    print(f"wrote {done} image(s) to {args.out}" + (f"; skipped {len(bad)} bad file(s)" if bad else ""))
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mobilesam-export", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export MobileSAM's image encoder and prompt decoder as two graphs to ONNX, "
                    "CoreML, TFLite (LiteRT) and OpenVINO; check parity against PyTorch; benchmark.",
        epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)

    e = sub.add_parser("export", help="export a bundle (graphs + manifest), then run its parity gate")
    e.add_argument("--format", "-f", default="onnx", choices=(*exporters.FORMATS, "all"))
    e.add_argument("--quant", "-q", default=None,
                   help="precision: onnx fp32|fp16|int8|int8-static; openvino fp32|fp16|int8|"
                        "int8-weights; coreml fp32|fp16|int8|palettize6|palettize4; tflite "
                        "fp32|fp16|int8|int8-static; web fp32|fp16|int8 (default: the format's default)")
    e.add_argument("--weights", "-w", default=None,
                   help="checkpoint path, or 'random' for seeded random weights (default: "
                        "weights/mobile_sam.pt, downloaded when absent)")
    e.add_argument("--out", "-o", default="exports", help="output folder (bundle = OUT/FORMAT-QUANT)")
    e.add_argument("--images", default=None, help="calibration images (default: packaged calibration photos)")
    e.add_argument("--parity-images", default=None,
                   help="parity images (default: packaged evaluation photos)")
    e.add_argument("--no-parity", action="store_true", help="skip the parity check")
    e.add_argument("--no-parity-gate", action="store_true",
                   help="publish the bundle even if it fails its parity gate")
    e.add_argument("--official-decoder", action="store_true",
                   help="onnx: also write decoder_sam_official.onnx with SAM's ONNX interface")
    e.add_argument("--no-split-decoder", action="store_true",
                   help="onnx/openvino: leave out the split decoder (decoder_image + "
                        "decoder_prompts: faster clicks without mask input, ~28 MB more)")
    e.add_argument("--image-input", action="store_true",
                   help="coreml: encoder takes an ImageType (0..255 RGB), normalisation baked in")
    e.add_argument("--slots", type=int, default=16, help="tflite: fixed prompt slots (default 16)")
    e.add_argument("--prompt-batch", type=int, default=16,
                   help="tflite: prompt sets of the decoder's batch signature (default 16; 1: none)")
    e.set_defaults(func=cmd_export)

    p = sub.add_parser("parity", help="compare bundles with the PyTorch reference")
    p.add_argument("bundles", nargs="+")
    p.add_argument("--weights", "-w", default=None, help="the checkpoint the bundle came from")
    p.add_argument("--images", default=None, help="image folder (default: the packaged evaluation photos)")
    p.add_argument("--no-gate", action="store_true", help="report only, exit 0 on a failed gate")
    p.set_defaults(func=cmd_parity)

    b = sub.add_parser("bench", help="latency, memory and size of bundles (see benchmarks/)")
    b.add_argument("bundles", nargs="+")
    b.add_argument("--out", default="benchmarks/results/latest", help="report folder")
    b.add_argument("--no-torch", action="store_true", help="skip the eager PyTorch baseline")
    b.set_defaults(func=cmd_bench)

    t = sub.add_parser("summary", help="markdown table of bundles' recorded sizes and parity")
    t.add_argument("bundles", nargs="+")
    t.set_defaults(func=cmd_summary)

    s = sub.add_parser("serve", help="serve a web bundle with the headers WASM threads need (COOP/COEP)")
    s.add_argument("bundle", help="a web bundle folder, e.g. exports/web-fp32")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    s.set_defaults(func=cmd_serve)

    g = sub.add_parser(
        "segment", help="masks for images: overlay PNGs + COCO (RLE) or YOLO (polygon) labels",
        description="Segment images with a bundle. Per image writes OUT/<stem>.overlay.png and "
                    "OUT/<stem>.json (COCO: RLE masks) or OUT/<stem>.txt (YOLO segmentation: "
                    "class x1 y1 x2 y2 ..., normalised). Bad files are reported and skipped.")
    g.add_argument("bundle", help="an exported bundle folder, e.g. exports/onnx-fp32")
    g.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders")
    g.add_argument("--out", "-o", required=True, help="output folder")
    what = g.add_mutually_exclusive_group(required=True)
    what.add_argument("--everything", action="store_true",
                      help="segment everything (SAM's automatic mask generator)")
    what.add_argument("--points", metavar='"x,y;x,y"',
                      help="one object per point, pixel coordinates of the original image")
    what.add_argument("--boxes", metavar="FILE",
                      help="detector boxes, one object each: a COCO JSON file (images matched by "
                           "file name), a folder of YOLO <stem>.txt labels (class cx cy w h, "
                           "normalised), or one YOLO .txt used for every image")
    g.add_argument("--labels", choices=("coco", "yolo"), default="coco", help="label format (default coco)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    a = g.add_argument_group("--everything options (SAM's names and defaults)")
    a.add_argument("--points-per-side", type=int, default=32)
    a.add_argument("--points-per-batch", type=int, default=64)
    a.add_argument("--pred-iou-thresh", type=float, default=0.88)
    a.add_argument("--stability-score-thresh", type=float, default=0.95)
    a.add_argument("--box-nms-thresh", type=float, default=0.7)
    a.add_argument("--crop-n-layers", type=int, default=0)
    a.add_argument("--min-mask-region-area", type=int, default=0)
    g.set_defaults(func=cmd_segment)

    i = sub.add_parser("inspect", help="show a bundle's manifest, files (verified) and parity")
    i.add_argument("bundle")
    i.add_argument("--json", action="store_true", help="print the whole manifest")
    i.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .parity import ParityError

    try:
        return args.func(args)
    except (CheckpointError, BundleError, ParityError, MissingExtraError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no bundle was changed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
