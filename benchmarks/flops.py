"""FLOPs of the exported graphs, counted on the eager model with torch's FlopCounterMode."""

from __future__ import annotations

import torch

from mobilesam_runtime import contract


def graph_gflops(model) -> dict[str, float]:
    """GFLOP of the encoder graph (1024x1024) and of the decoder graph for one click
    (1 point + SAM's padding point, no mask input; all 4 low-res masks, no upscaling)."""
    from torch.utils.flop_counter import FlopCounterMode

    from mobilesam_export.graphs import DecoderGraph
    from mobilesam_export.mixed_precision import unit_flops

    enc = sum(unit_flops(model).values())
    low = contract.LOW_RES_SIZE
    feeds = (torch.zeros(1, contract.EMBED_DIM, contract.EMBED_SIZE, contract.EMBED_SIZE),
             torch.tensor([[[500.0, 400.0], [0.0, 0.0]]]), torch.tensor([[1.0, -1.0]]),
             torch.zeros(1, 1, low, low), torch.zeros(1))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        DecoderGraph(model).eval()(*feeds)
    return {"encoder": enc / 1e9, "decoder_1": counter.get_total_flops() / 1e9}
