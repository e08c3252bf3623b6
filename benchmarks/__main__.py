"""python -m benchmarks BUNDLE... — the runtime's benchmark (mobilesam-bench) plus, interleaved
in the same run, two baselines with the same weights: the naive export (upstream code, plain
torch.onnx, onnxruntime defaults: benchmarks/naive.py) and eager PyTorch (upstream code:
benchmarks/reference.py); graph FLOPs counted on the model give the compute-limit columns.
Optionally export-all first.

Every bundle and baseline is loaded in its own worker process (its own cold start and peak RSS)
and all are timed run by run in rotation."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from mobilesam_runtime.bench.__main__ import add_arguments, run


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401

        import mobilesam_export  # noqa: F401
    except ImportError:
        return False
    return True


def _export_all(args, loaded) -> list[str]:
    """Every format/precision that runs on this machine, exported into OUT/bundles."""
    from mobilesam_export import exporters
    from mobilesam_export.bundle import export_bundle

    bundles = []
    for fmt in exporters.FORMATS:
        mod = exporters.get(fmt)
        if fmt == "web" or not getattr(mod, "CAN_RUN_HERE", lambda: True)():  # web: benchmarks/web.py
            continue
        for quant in mod.QUANTS:
            bundles.append(str(export_bundle(loaded, fmt, quant, Path(args.out) / "bundles",
                                             parity_gate=False)))
    return bundles


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    add_arguments(p)
    p.set_defaults(out="benchmarks/results/latest")
    p.add_argument("--no-torch", action="store_true", help="skip the eager PyTorch baseline")
    p.add_argument("--no-naive", action="store_true", help="skip the naive-export baseline")
    p.add_argument("--export-all", action="store_true",
                   help="first export every format/precision that runs here (needs the exporter)")
    p.add_argument("--weights", default="random",
                   help="checkpoint or random: for --export-all and for both baselines")
    args = p.parse_args(argv)
    if not args.bundles and not args.export_all:
        p.error("give at least one bundle (or --export-all)")
    if not _torch_available():
        print("torch/mobilesam_export not installed: no baselines, no FLOP counts", file=sys.stderr)
        return run(list(args.bundles), args)
    from mobilesam_export.checkpoint import load_model
    from mobilesam_runtime import RandomWeightsWarning

    from . import flops, naive
    from .upstream import UpstreamMissing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        loaded = load_model(args.weights)
    bundles = list(args.bundles) + (_export_all(args, loaded) if args.export_all else [])
    extra = []
    try:
        if not args.no_naive:
            extra.append(("benchmarks.naive", str(naive.export(Path(args.out) / "naive", args.weights))))
        if not args.no_torch:
            extra.append(("benchmarks.reference", str(args.weights)))
    except UpstreamMissing as e:  # the baselines need upstream mobile_sam
        print(f"baselines left out: {e}", file=sys.stderr)
    return run(bundles, args, extra, flops.graph_gflops(loaded.model))


if __name__ == "__main__":
    sys.exit(main())
