"""Segment-everything speed: our torch-free `SamAutomaticMaskGenerator` on a bundle against
upstream's generator on eager PyTorch (`mobile_sam`, same weights), same photo, same parameters,
in one run; also how many of upstream's masks ours reproduces (one-to-one, mask IoU >= 0.9).

    python -m benchmarks.everything exports/onnx-fp32                       # 32x32, SAM defaults
    python -m benchmarks.everything exports/onnx-fp32 --pred-iou-thresh 0.06 \\
        --stability-score-thresh 0.4 --box-nms-thresh 1.0                    # random weights

With random weights SAM's default filters keep no mask at all (predicted IoUs are ~0.02-0.16),
so our generator, which upscales only the masks that pass the IoU filter, skips nearly all
post-processing there; the second line keeps a realistic number of masks for a fair timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from mobilesam_runtime import RandomWeightsWarning, sample_images
from mobilesam_runtime.manifest import validate_bundle

PARAMS = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh",
          "box_nms_thresh", "crop_n_layers")


def match_masks(ours: list[np.ndarray], theirs: list[np.ndarray], min_iou: float = 0.9,
                chunk: int = 16) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by mask IoU, best pairs first: [(ours i, theirs j, IoU)]."""
    if not ours or not theirs:
        return []
    iou = np.zeros((len(ours), len(theirs)), np.float64)
    area_a = np.array([m.sum() for m in ours], np.float64)
    area_b = np.array([m.sum() for m in theirs], np.float64)
    for i in range(0, len(ours), chunk):
        a = np.stack([m.ravel() for m in ours[i:i + chunk]]).astype(np.float32)
        for j in range(0, len(theirs), chunk):
            b = np.stack([m.ravel() for m in theirs[j:j + chunk]]).astype(np.float32)
            inter = a @ b.T
            union = area_a[i:i + chunk, None] + area_b[None, j:j + chunk] - inter
            iou[i:i + chunk, j:j + chunk] = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    pairs = []
    while iou.size and iou.max() >= min_iou:
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        pairs.append((int(i), int(j), float(iou[i, j])))
        iou[i, :] = -1
        iou[:, j] = -1
    return pairs


def _timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times), times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="an exported bundle (e.g. exports/onnx-fp32)")
    ap.add_argument("--image", default=None, help="photo (default: the packaged truck.jpg, 1800x1200)")
    ap.add_argument("--weights", default=None,
                    help="checkpoint the bundle came from (random-weight bundles: not needed)")
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--points-per-batch", type=int, default=64)
    ap.add_argument("--pred-iou-thresh", type=float, default=0.88)
    ap.add_argument("--stability-score-thresh", type=float, default=0.95)
    ap.add_argument("--box-nms-thresh", type=float, default=0.7)
    ap.add_argument("--crop-n-layers", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each (best is reported)")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--skip-upstream", action="store_true", help="time ours only")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args(argv)

    import mobilesam_runtime

    params = {k: getattr(args, k) for k in PARAMS}
    if args.image is None:
        image = sample_images.default_benchmark_image()
    else:
        with Image.open(args.image) as im:
            image = np.asarray(im.convert("RGB"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        predictor = mobilesam_runtime.load(args.bundle)
    ours_gen = mobilesam_runtime.SamAutomaticMaskGenerator(predictor, **params)
    ours, t_ours, ours_all = _timed(lambda: ours_gen.generate(image), args.repeats)
    result = {"bundle": str(args.bundle), "image": list(image.shape[:2]), "params": params,
              "machine": platform.processor() or platform.machine(),
              "ours_s": t_ours, "ours_runs_s": ours_all, "ours_masks": len(ours)}
    print(f"ours:     {t_ours:8.2f} s  {len(ours)} masks  ({args.bundle})")
    if not args.skip_upstream:
        import torch

        from benchmarks.upstream import import_mobile_sam, upstream_model

        random = validate_bundle(Path(args.bundle), verify=False)["weights"]["random_weights"]
        if not random and args.weights is None:
            raise SystemExit("error: this bundle is from a checkpoint: pass --weights with it")
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        mobile_sam = import_mobile_sam()
        model = upstream_model(args.weights or "random")
        theirs_gen = mobile_sam.SamAutomaticMaskGenerator(model, **params)
        theirs, t_theirs, theirs_all = _timed(lambda: theirs_gen.generate(image), args.repeats)
        pairs = match_masks([r["segmentation"] for r in ours], [r["segmentation"] for r in theirs])
        share = len(pairs) / len(theirs) if theirs else 1.0
        result.update(upstream_s=t_theirs, upstream_runs_s=theirs_all, upstream_masks=len(theirs),
                      matched=len(pairs), matched_share=share, speedup=t_theirs / t_ours,
                      torch_threads=torch.get_num_threads())
        print(f"upstream: {t_theirs:8.2f} s  {len(theirs)} masks  (eager torch, "
              f"{torch.get_num_threads()} threads)")
        print(f"speed-up: {t_theirs / t_ours:.2f}x; upstream masks matched at IoU >= 0.9: "
              f"{len(pairs)}/{len(theirs)} ({share:.1%})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
