"""python -m benchmarks BUNDLE... — latency, memory and size of exported bundles on this device.

Each bundle (and the eager PyTorch reference, when torch and mobilesam_export are importable)
runs in its own child process, one after the other, so peak RSS and cold start are its own."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from . import machine, report

DEFAULT_IMAGE = Path(__file__).resolve().parent.parent.parent / "shared" / "images" / "truck.jpg"


def _child(target: str, args, options: list[str] = ()) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.measure", target, "--image", str(args.image),
           "--runs", str(args.runs)] + (["--threads", str(args.threads)] if args.threads else [])
    for o in options:
        cmd += ["--option", o]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {target} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401

        import mobilesam_export  # noqa: F401
    except ImportError:
        return False
    return True


def _export_all(args) -> list[str]:
    """Every format/precision that runs on this machine, exported into OUT/bundles."""
    from mobilesam_export import exporters
    from mobilesam_export.bundle import export_bundle
    from mobilesam_export.checkpoint import load_model

    loaded = load_model(args.weights)
    bundles = []
    for fmt in exporters.FORMATS:
        mod = exporters.get(fmt)
        if not getattr(mod, "CAN_RUN_HERE", lambda: True)():
            continue
        for quant in mod.QUANTS:
            bundles.append(str(export_bundle(loaded, fmt, quant, Path(args.out) / "bundles",
                                             parity_gate=False)))
    return bundles


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("bundles", nargs="*", help="bundle folders (OUT/FORMAT-QUANT)")
    p.add_argument("--out", default="benchmarks/results/latest", help="report folder")
    p.add_argument("--image", default=str(DEFAULT_IMAGE), help="test photo")
    p.add_argument("--runs", type=int, default=10, help="timed encoder runs (decoder: 3x)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: runtime's)")
    p.add_argument("--no-torch", action="store_true", help="skip the eager PyTorch baseline")
    p.add_argument("--export-all", action="store_true",
                   help="first export every format/precision that runs here (needs the exporter)")
    p.add_argument("--weights", default="random", help="with --export-all: checkpoint or random")
    args = p.parse_args(argv)
    bundles = list(args.bundles) + (_export_all(args) if args.export_all else [])
    if not bundles:
        p.error("give at least one bundle (or --export-all)")
    facts = machine.cpu_facts()
    peaks = machine.matmul_peak()
    results, failed = [], []
    if not args.no_torch and _torch_available():
        results.append(_child("torch", args))
    for b in bundles:
        fmt = json.loads((Path(b) / "manifest.json").read_text())["format"]
        variants = [["precision=f32"], ["precision=bf16"]] if fmt == "openvino" else [[]]
        for options in variants:
            print(f"benchmarking {b} {' '.join(options)}", file=sys.stderr)
            try:
                results.append(_child(b, args, options))
            except RuntimeError as e:  # report the others; say which one failed
                print(e, file=sys.stderr)
                failed.append(b)
    print(report.write(Path(args.out), results, facts, peaks))
    print(f"\nwrote {args.out}/report.md, results.json, latency.png", file=sys.stderr)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
