"""Measure one bundle in this process and print JSON (`python -m mobilesam_runtime.bench.measure`).

Run as a child process per bundle so that peak RSS and cold start are the bundle's own."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .. import transforms

PROMPT_COUNTS = (1, 2, 5, 16)


def stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "min_ms": float(ms.min()), "runs": len(ms)}


def timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def points(n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    pts = np.stack([np.linspace(0.1 * w, 0.9 * w, n), np.linspace(0.2 * h, 0.8 * h, n)], 1)
    return pts.astype(np.float32), (np.arange(n) % 4 != 3).astype(np.int64)


def measure(predictor, image: np.ndarray, runs: int, warmup: int, load_s: float) -> dict:
    """Latencies of a SamPredictor-like object (a bundle's predictor or a reference)."""
    h, w = image.shape[:2]
    t = time.perf_counter()
    predictor.set_image(image)
    first = time.perf_counter() - t
    res = {"cold_start_ms": (load_s + first) * 1e3, "load_ms": load_s * 1e3,
           "first_set_image_ms": first * 1e3}
    res["set_image"] = stats(timed(lambda: predictor.set_image(image), runs, warmup))
    one = points(1, h, w)
    res["predict_1pt"] = stats(timed(lambda: predictor.predict(*one), runs * 3, warmup))
    backend = getattr(predictor, "backend", None)
    if backend is not None:  # graph-only timings and the pre/post split
        from ..predictor import decoder_prompts

        x = transforms.normalize_and_pad(transforms.resize_image(image))
        res["encoder"] = stats(timed(lambda: backend.encode(x), runs, warmup))
        res["preprocess"] = stats(timed(
            lambda: transforms.normalize_and_pad(transforms.resize_image(image)), runs, warmup))
        emb = predictor.features
        decoder = {}
        for n in PROMPT_COUNTS:
            try:
                feeds = decoder_prompts(*points(n, h, w), None, None, (h, w),
                                        getattr(backend, "max_points", None))
                decoder[str(n)] = stats(timed(lambda f=feeds: backend.decode(emb, *f), runs * 3, warmup))
            except ValueError as e:  # more prompts than a fixed-slot decoder holds
                decoder[str(n)] = {"error": str(e)}
        res["decoder_by_points"] = decoder
        res["decoder"] = decoder["1"]
        low = np.zeros((3, 256, 256), np.float32)
        res["postprocess"] = stats(timed(lambda: transforms.upscale_masks(
            low, predictor._rows, predictor._cols) > 0, runs, warmup))
    else:  # torch reference: encoder = set_image minus preprocessing, decoder = predict
        res["encoder"] = res["set_image"]
        res["decoder"] = res["predict_1pt"]
    for multimask in (True, False):
        res[f"predict_multimask_{multimask}"] = stats(timed(
            lambda m=multimask: predictor.predict(*one, multimask_output=m), runs * 3, warmup))
    res["end_to_end"] = stats(timed(lambda: (predictor.set_image(image), predictor.predict(*one)),
                                    max(3, runs // 2), 1))
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every child (bundle or reference)."""
    p.add_argument("--image", default=None, help="photo (default: the packaged truck.jpg)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)


def read_image(path: str | None) -> np.ndarray:
    from ..sample_images import default_benchmark_image

    return default_benchmark_image() if path is None else np.asarray(Image.open(path).convert("RGB"))


def finish(info: dict, predictor, image: np.ndarray, args, load_s: float) -> int:
    """Measure, add the machine's matmul peak taken right after, print the JSON line."""
    info.update(measure(predictor, image, args.runs, args.warmup, load_s))
    # this machine's speed drifts (shared host): the peak is measured beside every bundle
    from .machine import matmul_peak

    info["matmul_peak_gflops"] = matmul_peak()
    json.dump(info, sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("target", help="bundle folder")
    add_arguments(p)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, e.g. precision=bf16 for OpenVINO")
    args = p.parse_args(argv)
    image = read_image(args.image)
    import warnings

    import mobilesam_runtime

    warnings.simplefilter("ignore", mobilesam_runtime.RandomWeightsWarning)
    t = time.perf_counter()
    opts = dict(o.split("=", 1) for o in args.option)
    if args.threads:
        opts["threads"] = args.threads
    predictor = mobilesam_runtime.load(args.target, **opts)
    load_s = time.perf_counter() - t
    m = predictor.manifest
    suffix = "".join(f" {v}" for v in dict(o.split("=", 1) for o in args.option).values())
    info = {"name": Path(args.target).name + suffix, "format": m["format"], "precision": m["precision"],
            "threads": args.threads or "runtime default",
            "size_mb": sum(f["bytes"] for f in m["files"].values()) / 1e6,
            "random_weights": m["weights"]["random_weights"]}
    if m["format"] == "openvino":
        info["inference_precision"] = predictor.backend.precision
    return finish(info, predictor, image, args, load_s)


if __name__ == "__main__":
    sys.exit(main())
