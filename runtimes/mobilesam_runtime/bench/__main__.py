"""mobilesam-bench BUNDLE... — latency, memory and size of exported bundles on this device.

Needs only mobilesam-runtime and each bundle's runtime library. Every bundle runs in its own
child process, one after the other; OpenVINO bundles run at f32 and bf16 inference precision."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from . import machine, report

MEASURE = "mobilesam_runtime.bench.measure"


def child(module: str, target: str, args: argparse.Namespace, options: list[str] = ()) -> dict:
    """Run `python -m module target ...` and return its JSON result."""
    cmd = [sys.executable, "-m", module, target, "--runs", str(args.runs)]
    if args.image:
        cmd += ["--image", str(args.image)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    for o in options:
        cmd += ["--option", o]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {target} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def bundle_variants(bundle: str) -> list[list[str]]:
    """Backend option sets a bundle is measured with."""
    fmt = json.loads((Path(bundle) / "manifest.json").read_text())["format"]
    return [["precision=f32"], ["precision=bf16"]] if fmt == "openvino" else [[]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="*", help="bundle folders (OUT/FORMAT-QUANT)")
    p.add_argument("--out", default="bench-results", help="report folder")
    p.add_argument("--image", default=None, help="test photo (default: the packaged truck.jpg)")
    p.add_argument("--runs", type=int, default=10, help="timed encoder runs (decoder: 3x)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: runtime's)")


def run(bundles: list[str], args: argparse.Namespace, extra: list[tuple[str, str]] = ()) -> int:
    """Measure `extra` (module, target) children first, then every bundle; write the report."""
    facts = machine.cpu_facts()
    peaks = machine.matmul_peak()
    results, failed = [], []
    for module, target in extra:
        results.append(child(module, target, args))
    for b in bundles:
        for options in bundle_variants(b):
            print(f"benchmarking {b} {' '.join(options)}", file=sys.stderr)
            try:
                results.append(child(MEASURE, b, args, options))
            except RuntimeError as e:  # report the others; say which one failed
                print(e, file=sys.stderr)
                failed.append(b)
    print(report.write(Path(args.out), results, facts, peaks))
    print(f"\nwrote {args.out}/report.md, results.json, latency.png", file=sys.stderr)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mobilesam-bench", description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    if not args.bundles:
        p.error("give at least one bundle folder")
    return run(args.bundles, args)


if __name__ == "__main__":
    sys.exit(main())
