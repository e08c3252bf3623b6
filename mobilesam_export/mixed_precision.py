"""Accuracy-aware mixed precision for the image encoder, chosen per checkpoint at export time.

The encoder is split into its six stages (`UNITS`). A format supplies `quantize(float_units)`
(an int8 encoder with those stages kept float) and `embed(path)` (its embeddings of the
calibration photos). The search:

1. quantizes everything; if the calibration score meets the target, done;
2. measures each stage's sensitivity: the score with only that stage float;
3. restores stages to float greedily — largest score gain per encoder FLOP first, i.e. the cheap
   ones — until the target is met.

Everything here is scored on the **calibration** photos (with the parity prompt types decoded by
the PyTorch reference); the published bundle is then gated by parity on the disjoint
**evaluation** photos, so the choice is never scored on the data it was tuned on. The target is
stricter than the gate by a margin, because a held-out set is always a little worse.

Status: not yet called by the exporters. Measured on an unseen checkpoint with outlier channels
(tests/synthetic_checkpoints.py, outliers-seed2), no single stage repairs ORT int8-static (all
int8: cosine 0.979 / calibration mask IoU 0.79; best single stage float: 0.983 / 0.815), so the
greedy restore would keep most of the encoder float; OpenVINO NNCF PTQ reached 0.9947 / 0.904,
weight-only int8 0.99915 / 0.9505. Outlier-aware quantization (SmoothQuant for convolutions too,
per-op units) is needed before wiring it in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .calibration import load_images, prompt_cases
from .reference import TorchPredictor

UNITS = ("patch_embed", "layers.0", "layers.1", "layers.2", "layers.3", "neck")
# target = gate tightened by these margins (measured on random-weight checkpoints: held-out
# IoU ran up to ~0.01 below calibration IoU, cosine ~1e-4 below)
IOU_MARGIN = 0.02
COSINE_MARGIN = 0.0004


@dataclass(frozen=True)
class Target:
    mask_iou_min: float
    cosine_min: float

    def met(self, score: dict) -> bool:
        return score["mask_iou_min"] >= self.mask_iou_min and score["cosine_min"] >= self.cosine_min


def target_for(gate: dict) -> Target:
    """The calibration-set target for a parity gate."""
    return Target(min(1.0, gate["mask_iou_min"] + IOU_MARGIN),
                  min(1.0, gate["encoder_cosine_min"] + COSINE_MARGIN))


def unit_flops(model) -> dict[str, float]:
    """FLOPs of each encoder stage for one 1024x1024 image, counted on the traced model."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, depth=2)
    with counter, torch.no_grad():
        model.image_encoder(torch.zeros(1, 3, 1024, 1024))
    counts = {k.split(".", 1)[1]: sum(v.values()) for k, v in counter.get_flop_counts().items()
              if "." in k}
    return {u: float(counts.get(u, 0.0)) for u in UNITS}


class Scorer:
    """Scores candidate embeddings of the calibration photos against the fp32 reference: cosine
    of the embeddings, and mask IoU of the reference decoder's masks on the parity prompts."""

    def __init__(self, model, images_dir: str | Path | None = None) -> None:
        self.ref = TorchPredictor(model)
        self.photos = load_images(images_dir, "calibration")
        self.cases = []  # per photo: (reference embedding, input sizes, [(kwargs, ref masks)])
        for _, image in self.photos:
            self.ref.set_image(image)
            cases = [(kw, out[0] > 0) for _, kw, out in prompt_cases(image, self.ref)]
            self.cases.append((self.ref.get_image_embedding().copy(),
                               (self.ref.input_size, self.ref.original_size), cases))

    def encoder_inputs(self):
        """The encoder's input tensor for each calibration photo, in order."""
        from mobilesam_runtime import transforms

        for _, image in self.photos:
            yield transforms.normalize_and_pad(transforms.resize_image(image))

    def score(self, embeddings: list[np.ndarray]) -> dict:
        cos, ious = [], []
        for emb, (ref_emb, sizes, cases) in zip(embeddings, self.cases):
            cos.append(float((emb * ref_emb).sum() / (np.linalg.norm(emb) * np.linalg.norm(ref_emb))))
            self.ref.features = torch.from_numpy(np.ascontiguousarray(emb, np.float32))
            self.ref.input_size, self.ref.original_size = sizes
            for kw, ref_masks in cases:
                masks = self.ref.predict(**kw)[0]
                for a, b in zip(masks, ref_masks):
                    union = np.logical_or(a, b).sum()
                    ious.append(1.0 if union == 0 else float(np.logical_and(a, b).sum() / union))
        return {"cosine_min": min(cos), "mask_iou_min": min(ious), "mask_iou_mean": float(np.mean(ious))}


def search(quantize: Callable[[frozenset[str]], Path], embed: Callable[[Path], list[np.ndarray]],
           scorer: Scorer, flops: dict[str, float], target: Target,
           log: Callable[[str], None] = print) -> tuple[Path, dict]:
    """The int8 encoder with the fewest (cheapest) float stages meeting `target`, and the record
    of how it was chosen (for the manifest)."""
    evaluations: list[dict] = []

    def evaluate(float_units: frozenset[str]) -> tuple[Path, dict]:
        path = quantize(float_units)
        score = scorer.score(embed(path))
        evaluations.append({"float": sorted(float_units), **score})
        log(f"  float {sorted(float_units) or 'none'}: cosine {score['cosine_min']:.6f}, "
            f"mask IoU min {score['mask_iou_min']:.4f}")
        return path, score

    path, base = evaluate(frozenset())
    chosen: frozenset[str] = frozenset()
    sensitivity: dict[str, dict] = {}
    if not target.met(base):
        for unit in UNITS:  # one stage float at a time: how much does it alone repair?
            _, s = evaluate(frozenset({unit}))
            sensitivity[unit] = {"mask_iou_gain": s["mask_iou_min"] - base["mask_iou_min"],
                                 "cosine_gain": s["cosine_min"] - base["cosine_min"]}
        total = sum(flops.values())

        def value(u: str) -> float:  # repair per share of FLOPs kept float
            g = sensitivity[u]
            return (g["mask_iou_gain"] + 100 * g["cosine_gain"]) / max(flops[u] / total, 1e-3)

        score = base
        for unit in sorted(UNITS, key=value, reverse=True):
            if target.met(score):
                break
            chosen = chosen | {unit}
            path, score = evaluate(chosen)
        base = score
    total = sum(flops.values())
    record = {
        "method": "per-stage sensitivity on the calibration photos, greedy restore to float "
                  "(largest repair per FLOP first) until the target is met",
        "units": list(UNITS),
        "float_blocks": sorted(chosen, key=UNITS.index),
        "int8_flop_share": round(sum(f for u, f in flops.items() if u not in chosen) / total, 4),
        "unit_gflops": {u: round(f / 1e9, 2) for u, f in flops.items()},
        "sensitivity": sensitivity,
        "target": asdict(target),
        "calibration_score": base,
        "target_met": target.met(base),
        "evaluations": evaluations,
    }
    return path, record
