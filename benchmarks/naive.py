"""The naive-export baseline: upstream MobileSAM (`mobile_sam`) exported the way MobileSAM users
get it today (samexporter): `torch.onnx.export` with its defaults at opset 18 — the image encoder
as is, and SAM's official decoder through upstream's own `SamOnnxModel(return_single_mask=True)`
(prompt encoding, best-mask selection and upscaling to the original size inside the graph) —
run in onnxruntime with default session options.

TorchScript exporter (`dynamo=False`): torch 2.13's default dynamo exporter cannot export
SamOnnxModel with a dynamic point count (it specialises the point loop: measured here), and the
samexporter code predates it; for the encoder the dynamo graph also ran ~1.5× slower in
onnxruntime, so this is the stronger baseline.

    python -m benchmarks.naive export OUT/naive        # (the harness does this itself)
    python -m benchmarks.naive OUT/naive --serve       # a benchmark worker (onnxruntime only)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mobilesam_runtime.bench.measure import PROMPT_COUNTS, add_arguments, points, read_image, run_worker

OPSET = 18
MEAN = np.array([123.675, 116.28, 103.53], np.float32)  # SAM's pixel statistics
STD = np.array([58.395, 57.12, 57.375], np.float32)


def export(out: Path, weights: str = "random") -> Path:
    """Write OUT/encoder.onnx and OUT/decoder.onnx (skipped when already there for these
    weights and this torch)."""
    import contextlib
    import io
    import warnings

    import torch

    from .upstream import import_mobile_sam, upstream_model

    out = Path(out)
    stamp = {"weights": str(weights), "torch": torch.__version__, "opset": OPSET}
    info = out / "naive.json"
    if info.is_file() and json.loads(info.read_text()) == stamp:
        return out
    out.mkdir(parents=True, exist_ok=True)
    model = upstream_model(weights)
    onnx_model = import_mobile_sam().utils.onnx.SamOnnxModel(model, return_single_mask=True)
    dummy = {"image_embeddings": torch.randn(1, 256, 64, 64),
             "point_coords": torch.randint(0, 1024, (1, 5, 2), dtype=torch.float),
             "point_labels": torch.randint(0, 4, (1, 5), dtype=torch.float),
             "mask_input": torch.randn(1, 1, 256, 256), "has_mask_input": torch.tensor([1.0]),
             "orig_im_size": torch.tensor([1500.0, 2250.0])}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.image_encoder, (torch.randn(1, 3, 1024, 1024),), str(out / "encoder.onnx"),
                          input_names=["image"], output_names=["image_embeddings"], opset_version=OPSET,
                          dynamo=False)
        torch.onnx.export(onnx_model, tuple(dummy.values()), str(out / "decoder.onnx"),
                          input_names=list(dummy), output_names=["masks", "iou_predictions", "low_res_masks"],
                          opset_version=OPSET, dynamo=False,
                          dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}})
    info.write_text(json.dumps(stamp))
    return out


def preprocess(image: np.ndarray) -> np.ndarray:
    """Resize (PIL bilinear, longest side 1024), normalise, pad: a plain numpy version."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = 1024 / max(h, w)
    nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    x = (np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR)) - MEAN) / STD
    x = np.pad(x, ((0, 1024 - nh), (0, 1024 - nw), (0, 0)))
    return x.transpose(2, 0, 1)[None].astype(np.float32)


class NaiveTarget:
    """The naive graphs in onnxruntime with default options; per click = one run of the
    official decoder (1 point + padding point; it returns the best mask at the original size)."""

    def __init__(self, folder: str, image: np.ndarray, threads: int | None) -> None:
        t = time.perf_counter()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.enc = ort.InferenceSession(str(Path(folder) / "encoder.onnx"), opts,
                                        providers=["CPUExecutionProvider"])
        self.dec = ort.InferenceSession(str(Path(folder) / "decoder.onnx"), opts,
                                        providers=["CPUExecutionProvider"])
        self.load_s = time.perf_counter() - t
        size = sum(f.stat().st_size for f in Path(folder).glob("*.onnx")) / 1e6
        self.info = {"name": "naive export fp32 (upstream, torch.onnx, ORT defaults)", "kind": "naive",
                     "format": "onnx", "precision": "fp32", "size_mb": size}
        self.image = image
        self.x = preprocess(image)
        self.features = None

    def set_image(self) -> None:
        self.features = self.enc.run(None, {"image": preprocess(self.image)})[0]

    def first(self) -> None:
        self.set_image()

    def decode(self, n: int) -> np.ndarray:
        h, w = self.image.shape[:2]
        c, lab = points(n, h, w)
        scale = 1024 / max(h, w)
        c = c * np.array([int(w * scale + 0.5) / w, int(h * scale + 0.5) / h], np.float32)
        coords = np.concatenate([c, np.zeros((1, 2), np.float32)])[None].astype(np.float32)
        labels = np.concatenate([lab, [-1]])[None].astype(np.float32)
        masks = self.dec.run(None, {
            "image_embeddings": self.features, "point_coords": coords, "point_labels": labels,
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([h, w], np.float32)})[0]
        return masks > 0.0

    def ops(self) -> dict:
        out = {"encoder": lambda: self.enc.run(None, {"image": self.x}), "set_image": self.set_image,
               "predict": lambda: self.decode(1), "predict_single": lambda: self.decode(1),
               "preprocess": lambda: preprocess(self.image)}
        for n in PROMPT_COUNTS:
            out[f"decoder_{n}"] = lambda n=n: self.decode(n)
        return out


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["export"]:
        p = argparse.ArgumentParser(description="export the naive baseline graphs")
        p.add_argument("cmd")
        p.add_argument("out")
        p.add_argument("--weights", default="random")
        a = p.parse_args(argv)
        print(export(Path(a.out), a.weights))
        return 0
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("target", help="folder with the naive encoder.onnx and decoder.onnx")
    add_arguments(p)
    args = p.parse_args(argv)
    image = read_image(args.image)
    return run_worker(lambda: NaiveTarget(args.target, image, args.threads), args)


if __name__ == "__main__":
    sys.exit(main())
