"""Official-layout checkpoints the quantization recipes have never seen (not flagged random).

Trained transformers carry a few large-magnitude outlier channels in LayerNorm scales and MLP
weights, which break naive per-tensor int8; these checkpoints reproduce that, with different
seeds and weight statistics, and are saved as ordinary `.pt` files (so the 0.95 gate applies)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mobilesam_export.checkpoint import random_model


@dataclass(frozen=True)
class Spec:
    name: str
    seed: int
    weight_scale: float = 1.0  # multiplies every encoder Linear/Conv weight (activation scale)
    outlier_channels: int = 0  # per LayerNorm / fc2: this many channels get `outlier_gain`
    outlier_gain: float = 1.0


SPECS = (
    Spec("plain-seed1", seed=1),
    Spec("outliers-seed2", seed=2, outlier_channels=3, outlier_gain=20.0),
    Spec("outliers-wide-seed3", seed=3, weight_scale=1.3, outlier_channels=6, outlier_gain=10.0),
)


def state_dict(spec: Spec) -> dict[str, torch.Tensor]:
    """The state dict of `spec` (deterministic)."""
    model = random_model(spec.seed)
    gen = torch.Generator().manual_seed(1000 + spec.seed)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for name, t in sd.items():
        if not name.startswith("image_encoder.") or not t.is_floating_point():
            continue
        if name.endswith("weight") and t.ndim >= 2 and spec.weight_scale != 1.0:
            t.mul_(spec.weight_scale)
        if spec.outlier_channels and t.ndim == 1 and name.endswith("norm.weight"):
            idx = torch.randperm(t.numel(), generator=gen)[: spec.outlier_channels]
            t[idx] *= spec.outlier_gain
        if spec.outlier_channels and name.endswith("mlp.fc2.weight"):
            idx = torch.randperm(t.shape[0], generator=gen)[: spec.outlier_channels]
            t[idx] *= spec.outlier_gain
    return sd


def save(spec: Spec, folder: Path) -> Path:
    """`folder/<name>.pt`, a bare state dict like mobile_sam.pt."""
    path = Path(folder) / f"{spec.name}.pt"
    torch.save(state_dict(spec), path)
    return path
