"""python -m benchmarks BUNDLE... — the runtime's benchmark (mobilesam-bench) plus, in the same
run, the eager PyTorch reference as a baseline, and optionally export-all first.

Each bundle (and the reference) runs in its own child process, one after the other, so peak RSS
and cold start are its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobilesam_runtime.bench.__main__ import add_arguments, run


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
    p.add_argument("--export-all", action="store_true",
                   help="first export every format/precision that runs here (needs the exporter)")
    p.add_argument("--weights", default="random", help="with --export-all: checkpoint or random")
    args = p.parse_args(argv)
    bundles = list(args.bundles) + (_export_all(args) if args.export_all else [])
    if not bundles:
        p.error("give at least one bundle (or --export-all)")
    extra = [] if args.no_torch or not _torch_available() else [("benchmarks.reference", "torch")]
    return run(bundles, args, extra)


if __name__ == "__main__":
    sys.exit(main())
