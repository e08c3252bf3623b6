"""Measure the eager PyTorch reference in this process and print JSON (a benchmark child)."""

from __future__ import annotations

import argparse
import sys
import time

from mobilesam_runtime.bench.measure import add_arguments, finish, read_image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("target", choices=["torch"])
    add_arguments(p)
    args = p.parse_args(argv)
    image = read_image(args.image)
    t = time.perf_counter()
    import torch

    from mobilesam_export.checkpoint import random_model
    from mobilesam_export.reference import TorchPredictor

    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = TorchPredictor(random_model())
    info = {"name": "pytorch-eager-fp32", "format": "pytorch", "precision": "fp32",
            "threads": torch.get_num_threads(), "size_mb": None}
    return finish(info, predictor, image, args, time.perf_counter() - t)


if __name__ == "__main__":
    sys.exit(main())
