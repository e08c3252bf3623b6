"""Eager PyTorch baseline worker: upstream MobileSAM's own SamPredictor (`mobile_sam`), same
weights as the bundles, measuring the same things: the encoder graph alone (`image_encoder` on
a pre-processed tensor), `set_image`, `predict` per click (1 point, 3 masks at the original size)
and the decoder graph alone (prompt encoder + mask decoder, low-res masks)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mobilesam_runtime.bench.measure import PROMPT_COUNTS, add_arguments, points, read_image, run_worker


class TorchTarget:
    def __init__(self, weights: str, image: np.ndarray, threads: int | None) -> None:
        t = time.perf_counter()
        import torch

        from benchmarks.upstream import import_mobile_sam, upstream_model

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        model = upstream_model(weights)
        self.predictor = import_mobile_sam().SamPredictor(model)
        self.load_s = time.perf_counter() - t
        self.model, self.image = model, image
        self.info = {"name": "pytorch-eager-fp32 (upstream mobile_sam)", "kind": "pytorch",
                     "format": "pytorch", "precision": "fp32", "size_mb": None,
                     "torch_threads": torch.get_num_threads()}
        h, w = image.shape[:2]
        self.one = points(1, h, w)
        resized = self.predictor.transform.apply_image(image)
        x = torch.as_tensor(resized).permute(2, 0, 1)[None].float()
        with torch.inference_mode():
            self.x = model.preprocess(x)

    def first(self) -> None:
        self.predictor.set_image(self.image)

    def _decode(self, n: int):
        p, torch = self.predictor, self.torch
        h, w = self.image.shape[:2]
        c, lab = points(n, h, w)
        coords = torch.as_tensor(p.transform.apply_coords(c, (h, w)))[None]
        with torch.inference_mode():
            sparse, dense = self.model.prompt_encoder(points=(coords, torch.as_tensor(lab)[None]),
                                                      boxes=None, masks=None)
            return self.model.mask_decoder(p.features, self.model.prompt_encoder.get_dense_pe(),
                                           sparse, dense, multimask_output=True)

    def ops(self) -> dict:
        torch, p = self.torch, self.predictor

        def encoder():
            with torch.inference_mode():
                return self.model.image_encoder(self.x)

        def preprocess():
            resized = p.transform.apply_image(self.image)
            with torch.inference_mode():
                return self.model.preprocess(torch.as_tensor(resized).permute(2, 0, 1)[None].float())

        out = {"encoder": encoder, "set_image": lambda: p.set_image(self.image),
               "predict": lambda: p.predict(*self.one, multimask_output=True),
               "predict_single": lambda: p.predict(*self.one, multimask_output=False),
               "preprocess": preprocess}
        for n in PROMPT_COUNTS:
            out[f"decoder_{n}"] = lambda n=n: self._decode(n)
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("target", help="weights: a checkpoint path or 'random'")
    add_arguments(p)
    args = p.parse_args(argv)
    image = read_image(args.image)
    return run_worker(lambda: TorchTarget(args.target, image, args.threads), args)


if __name__ == "__main__":
    sys.exit(main())
