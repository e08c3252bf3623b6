"""A benchmark worker: one target (a bundle, or a reference the harness adds) loaded in its own
process, timed on request so that the parent can interleave every target run by run.

    python -m mobilesam_runtime.bench.measure BUNDLE --serve [--option precision=bf16]

Protocol (one JSON object per line): the worker loads the target, runs the first `set_image`
(cold start = load + that), answers `{"ready": info}`; then for `{"op": "time", "what": OP,
"n": K}` it runs OP K times and answers `{"s": [seconds...], "split": {...}}`; `{"op": "rss"}`
answers the peak RSS. Protocol lines go to the original stdout; anything libraries print goes
to stderr. Without --serve, it measures alone and prints one JSON result (a quick check)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from .. import transforms
from .machine import peak_rss_mb

PROMPT_COUNTS = (1, 2, 5, 16)
BATCH = 64  # predict_batch_64: this many boxes in one call (a detector's output)


def stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "min_ms": float(ms.min()), "runs": len(ms)}


def points(n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """n clicks spread over the image, labels 1 (every fourth 0)."""
    pts = np.stack([np.linspace(0.1 * w, 0.9 * w, n), np.linspace(0.2 * h, 0.8 * h, n)], 1)
    return pts.astype(np.float32), (np.arange(n) % 4 != 3).astype(np.int64)


class BundleTarget:
    """A bundle's SamPredictor: `encoder` is backend.encode on a prepared input (the graph
    alone); `set_image` and `predict` (1 point, 3 masks at the original size) are the
    predictor's calls, `predict_batch_64` one call with 64 boxes (3 masks each at the original
    size); `decoder_N` is the decoder graph alone with N points, as predict runs it (the split
    decoder's prompt graph when the bundle has one, see contract.SPLIT_DECODER_ROLES)."""

    def __init__(self, bundle: str, image: np.ndarray, options: dict) -> None:
        import warnings

        import mobilesam_runtime

        from ..predictor import decoder_prompts

        warnings.simplefilter("ignore", mobilesam_runtime.RandomWeightsWarning)
        t = time.perf_counter()
        self.predictor = p = mobilesam_runtime.load(bundle, **options)
        self.load_s = time.perf_counter() - t
        m = p.manifest
        self.info = {"name": Path(bundle).name + "".join(
                         f" {v}" if k == "precision" else f" {k}={v}"
                         for k, v in options.items() if k != "threads"),
                     "kind": "bundle", "format": m["format"], "precision": m["precision"],
                     "size_mb": sum(f["bytes"] for f in m["files"].values()) / 1e6,
                     "random_weights": m["weights"]["random_weights"],
                     "gated": gated(m, options, getattr(p.backend, "effective_precision", None))}
        self.info["split_decoder"] = bool(getattr(p.backend, "split_decoder", False))
        if m["format"] == "openvino":
            self.info["inference_precision"] = p.backend.precision
            self.info["effective_precision"] = p.backend.effective_precision
        self.image = image
        h, w = image.shape[:2]
        self.x = transforms.normalize_and_pad(transforms.resize_image(image))
        self.one = points(1, h, w)
        x0, y0 = np.meshgrid(np.linspace(0, 0.7 * w, 8), np.linspace(0, 0.7 * h, 8))
        self.boxes = np.stack([x0.ravel(), y0.ravel(), x0.ravel() + 0.3 * w,
                               y0.ravel() + 0.3 * h], 1)[:BATCH]
        self.feeds = {}
        for n in PROMPT_COUNTS:
            try:
                self.feeds[n] = decoder_prompts(*points(n, h, w), None, None, (h, w),
                                                getattr(p.backend, "max_points", None))
            except ValueError:  # more prompts than a fixed-slot decoder holds
                pass

    def first(self) -> None:
        self.predictor.set_image(self.image)

    def ops(self) -> dict[str, Callable[[], dict | None]]:
        p, b = self.predictor, self.predictor.backend

        def split(keys):
            return {k: v for k, v in p.timings.items() if k in keys}

        def set_image():
            p.set_image(self.image)
            return split(("preprocess", "encoder", "decoder_state", "upscale_setup"))

        def predict(multimask=True):
            p.predict(*self.one, multimask_output=multimask)
            return split(("decoder", "postprocess"))

        def predict_batch():
            p.predict_batch(boxes=self.boxes)
            return split(("decoder", "postprocess"))

        out = {"encoder": lambda: b.encode(self.x), "set_image": set_image, "predict": predict,
               "predict_single": lambda: predict(False), f"predict_batch_{BATCH}": predict_batch,
               "preprocess": lambda: transforms.normalize_and_pad(transforms.resize_image(self.image))}
        for n, f in self.feeds.items():
            out[f"decoder_{n}"] = lambda f=f: p._decode(p._current(), *f)
        return out


def gated(manifest: dict, options: dict, effective: str | None = None) -> bool:
    """Whether the bundle as run passed a parity gate: its manifest's parity passed, and a
    runtime precision other than f32 is only gated when the manifest records a passed parity
    run for that precision (`parity_runtime[precision]`) on a device that really ran it
    (`effective`: what this device runs; f32 here means the bundle's own parity applies)."""
    if not manifest.get("parity", {}).get("passed"):
        return False
    prec = options.get("precision", "f32")
    if prec == "f32" or effective == "f32":
        return True
    record = manifest.get("parity_runtime", {}).get(prec, {})
    return bool(record.get("passed")) and record.get("effective_precision") == (effective or prec)


def serve(target, proto) -> None:
    """Answer timing requests on stdin until EOF."""
    ops = target.ops()
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "rss":
            reply = {"peak_rss_mb": peak_rss_mb()}
        elif req["what"] not in ops:
            reply = {"missing": req["what"]}
        else:
            fn, secs, splits = ops[req["what"]], [], []
            for _ in range(req.get("n", 1)):
                t = time.perf_counter()
                s = fn()
                secs.append(time.perf_counter() - t)
                if isinstance(s, dict) and s:
                    splits.append(s)
            reply = {"s": secs, "split": splits}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


def protocol_stream():
    """The original stdout for protocol lines; fd 1 then points at stderr, so that whatever a
    library prints cannot corrupt the protocol."""
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def run_worker(make_target: Callable[[], object], args) -> int:
    """Build the target (timed), cold-start it, then serve or measure alone."""
    proto = protocol_stream() if args.serve else sys.stdout
    t = time.perf_counter()
    target = make_target()
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    target.first()
    first = time.perf_counter() - t
    load_s = getattr(target, "load_s", build_s)
    info = {**target.info, "threads": args.threads or "runtime default",
            "load_ms": load_s * 1e3, "first_set_image_ms": first * 1e3,
            "cold_start_ms": (load_s + first) * 1e3}
    if not args.serve:  # standalone: every op a few times, one JSON object
        for name, fn in target.ops().items():
            fn()
            secs = []
            for _ in range(args.runs):
                t = time.perf_counter()
                fn()
                secs.append(time.perf_counter() - t)
            info[name] = stats(secs)
        info["peak_rss_mb"] = peak_rss_mb()
        json.dump(info, sys.stdout)
        return 0
    proto.write(json.dumps({"ready": info}) + "\n")
    proto.flush()
    serve(target, proto)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every worker (bundle or reference)."""
    p.add_argument("--image", default=None, help="photo (default: the packaged truck.jpg)")
    p.add_argument("--runs", type=int, default=5, help="standalone mode: runs per op")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--serve", action="store_true", help="answer timing requests (see module doc)")


def read_image(path: str | None) -> np.ndarray:
    from ..sample_images import default_benchmark_image

    return default_benchmark_image() if path is None else np.asarray(Image.open(path).convert("RGB"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("target", help="bundle folder")
    add_arguments(p)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, e.g. precision=bf16 for OpenVINO")
    args = p.parse_args(argv)
    image = read_image(args.image)
    opts: dict = dict(o.split("=", 1) for o in args.option)
    if args.threads:
        opts["threads"] = args.threads
    return run_worker(lambda: BundleTarget(args.target, image, opts), args)


if __name__ == "__main__":
    sys.exit(main())
