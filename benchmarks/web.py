"""In-page benchmark of a web bundle (headless Chromium, bench.js) beside Python onnxruntime on
the same graphs, same host, same run, same thread counts:

    python -m benchmarks.web exports/web-fp32 [--threads 1 2] [--out benchmarks/results/web-HOST-DATE]

Session creation, encoder, and predict per click (decoder + 3 masks at the original size)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from mobilesam_runtime import SamPredictor, sample_images
from mobilesam_runtime.backends.onnx import OnnxBackend
from mobilesam_runtime.manifest import read_manifest


def _stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "min_ms": float(ms.min()), "runs": len(ms)}


def _clicks(n: int, h: int, w: int) -> list[tuple[float, float]]:
    """The same click positions as bench.js."""
    return [(w * (0.1 + 0.8 * ((i * 0.618) % 1)), h * (0.2 + 0.6 * ((i * 0.382) % 1))) for i in range(n)]


def python_ort(bundle: Path, image: np.ndarray, threads: int, encoder_runs: int, clicks: int) -> dict:
    manifest = read_manifest(bundle, verify=False)
    t0 = time.perf_counter()
    pred = SamPredictor(OnnxBackend(bundle, manifest, threads=threads), manifest)
    session = time.perf_counter() - t0
    pred.set_image(image)  # warm-up, as bench.js
    enc, set_image = [], []
    for _ in range(encoder_runs):
        t = time.perf_counter()
        pred.set_image(image)
        set_image.append(time.perf_counter() - t)
        enc.append(pred.timings["encoder"])
    h, w = image.shape[:2]
    pred.predict(np.array([[w / 2, h / 2]]), np.array([1]))
    click, dec, beyond = [], [], []
    for x, y in _clicks(clicks, h, w):
        t = time.perf_counter()
        masks, _, _ = pred.predict(np.array([[x, y]]), np.array([1]), multimask_output=True)
        click.append(time.perf_counter() - t)
        dec.append(pred.timings["decoder"])
        beyond.append(click[-1] - dec[-1])  # the masks' upscaling, mostly
        assert masks.shape == (3, h, w)
    return {"session_ms": session * 1e3, "set_image": _stats(set_image), "encoder": _stats(enc),
            "predict_click": _stats(click), "decoder": _stats(dec), "beyond_decoder": _stats(beyond)}


def in_page(bundle: Path, image: np.ndarray, threads: int, encoder_runs: int, clicks: int) -> dict:
    from mobilesam_export.webdriver import WebPage

    web = WebPage(bundle)
    try:
        h, w = image.shape[:2]
        rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], 2)
        return web.evaluate(
            """async ([data, w, h, threads, encoderRuns, clicks]) => {
                 const { runBenchmark } = await import('./bench.js');
                 const imageData = new ImageData(new Uint8ClampedArray(b64.dec(data).buffer), w, h);
                 return runBenchmark({ imageData, threads, encoderRuns, clicks }); }""",
            [base64.b64encode(rgba.tobytes()).decode(), w, h, threads, encoder_runs, clicks])
    finally:
        web.close()


def _p50(stats: dict | None) -> str:
    return "—" if stats is None else f"{stats['p50_ms']:.1f}"  # None: a bundle whose bench.js predates it


def to_markdown(report: dict) -> str:
    lines = [f"### Web bundle {report['bundle']} in headless Chromium vs Python onnxruntime",
             "", f"Host {report['host']}, {report['cores']} cores; image {report['image']} "
             f"({report['size']}); onnxruntime-web {report['onnxruntime_web']} (WASM), "
             f"onnxruntime {report['onnxruntime']}. p50 (min) in ms.", "",
             "| threads | runtime | session creation | encoder | set_image (+pre/post) | "
             "decoder | click − decoder | predict per click (3 masks, original size) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        for name in ("web", "python"):
            r = row[name]
            lines.append(
                f"| {row['threads']} | {'page (WASM)' if name == 'web' else 'Python ORT'} | "
                f"{r['session_ms']:.0f} | {r['encoder']['p50_ms']:.0f} ({r['encoder']['min_ms']:.0f}) | "
                f"{r['set_image']['p50_ms']:.0f} | {r['decoder']['p50_ms']:.1f} | "
                f"{_p50(r.get('beyond_decoder'))} | "
                f"{r['predict_click']['p50_ms']:.1f} ({r['predict_click']['min_ms']:.1f}) |")
        web, py = row["web"], row["python"]
        lines.append(f"| {row['threads']} | page / Python | | "
                     f"{web['encoder']['p50_ms'] / py['encoder']['p50_ms']:.2f}x | | "
                     f"{web['decoder']['p50_ms'] / py['decoder']['p50_ms']:.2f}x | | "
                     f"{web['predict_click']['p50_ms'] / py['predict_click']['p50_ms']:.2f}x |")
    lines += ["", "Session creation in the page includes fetching both graphs and checking their sha256 "
              "(fetch+verify: " + ", ".join(f"{r['web']['fetch_verify_ms']:.0f} ms" for r in report["rows"])
              + "). Click − decoder: per click, the predict time beyond the decoder graph (in the page: "
              "the 3 masks upscaled in worker.js and the messages to and from the worker). "
              f"Load average at the end: {', '.join(f'{v:.2f}' for v in report['load_average'])}. "
              "WebGPU is not measured: headless Chromium here has no GPU."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import onnxruntime

    ap = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="default: 1 and all cores (max 4)")
    ap.add_argument("--image", default="truck", help="a packaged evaluation photo (default truck)")
    ap.add_argument("--encoder-runs", type=int, default=3)
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--out", default=None, help="folder for web.json / web.md")
    args = ap.parse_args(argv)
    bundle = Path(args.bundle)
    manifest = read_manifest(bundle, verify=True)
    if manifest.get("format") != "web":
        raise SystemExit(f"{bundle} is not a web bundle")
    photos = dict((Path(n).stem, im) for n, im in sample_images.load("evaluation"))
    image = photos[args.image]
    threads = args.threads or sorted({1, min(4, os.cpu_count() or 1)})
    rows = []
    for t in threads:  # page then Python, per thread count, in one run
        web = in_page(bundle, image, t, args.encoder_runs, args.clicks)
        py = python_ort(bundle, image, t, args.encoder_runs, args.clicks)
        rows.append({"threads": t, "web": web, "python": py})
        print(f"threads {t}: page encoder {web['encoder']['p50_ms']:.0f} ms, click "
              f"{web['predict_click']['p50_ms']:.0f} ms | Python encoder {py['encoder']['p50_ms']:.0f} ms, "
              f"click {py['predict_click']['p50_ms']:.0f} ms")
    report = {"bundle": f"{manifest['format']}-{manifest['precision']}", "host": platform.node(),
              "cores": os.cpu_count(), "image": args.image, "size": f"{image.shape[1]}x{image.shape[0]}",
              "onnxruntime_web": manifest["notes"]["onnxruntime_web"]["version"],
              "onnxruntime": onnxruntime.__version__, "load_average": os.getloadavg(), "rows": rows}
    md = to_markdown(report)
    print(md)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"web-{manifest['precision']}.json").write_text(json.dumps(report, indent=2))
        (out / f"web-{manifest['precision']}.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
