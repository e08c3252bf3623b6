"""The two traceable graphs (encoder, prompt decoder) that every exporter converts.

Their inputs and outputs are exactly `mobilesam_runtime.contract`'s; the decoder is written without
data-dependent indexing (no index_put_), so ONNX, CoreML, TFLite and OpenVINO all convert it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mobilesam_runtime import contract

from .modeling import MobileSAM
from .modeling.factored import DecoderImageGraph, DecoderPromptsGraph

__all__ = ["EncoderGraph", "DecoderGraph", "OfficialDecoderGraph", "DecoderImageGraph",
           "DecoderPromptsGraph", "example_inputs"]


class EncoderGraph(nn.Module):
    """image [1,3,1024,1024] (normalised, padded) -> image_embeddings [1,256,64,64].

    With `normalize=True` the graph takes 0..255 RGB pixels instead and applies SAM's
    mean/std itself (for CoreML's ImageType input)."""

    def __init__(self, model: MobileSAM, normalize: bool = False) -> None:
        super().__init__()
        self.encoder = model.image_encoder
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(contract.PIXEL_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(contract.PIXEL_STD).view(1, 3, 1, 1), False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            image = (image - self.mean) / self.std
        return self.encoder(image)


class DecoderGraph(nn.Module):
    """Prompt encoder + mask decoder: all 4 masks and IoU scores for B prompt sets of N tokens
    each on one image (the embedding is broadcast over B inside the graph).

    With `masked_slots=True` (fixed-shape formats) prompt slots whose label is
    `contract.Label.UNUSED` are masked out of every attention, so they have no effect at all
    (unlike SAM's -1 padding token, which does)."""

    def __init__(self, model: MobileSAM, masked_slots: bool = False) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        self.masked_slots = masked_slots
        self.register_buffer("image_pe", model.prompt_encoder.get_dense_pe().detach(), False)

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor,
                point_labels: torch.Tensor, mask_input: torch.Tensor,
                has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        token_mask = None
        if self.masked_slots:
            token_mask = (point_labels != contract.Label.UNUSED).to(point_labels.dtype)
            point_labels = point_labels * token_mask + (token_mask - 1) * -contract.Label.PADDING
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels)
        dense = self.prompt_encoder.embed_mask(mask_input, has_mask_input)
        masks, iou = self.mask_decoder.predict_masks(image_embeddings, self.image_pe, sparse,
                                                     dense, token_mask)
        return iou, masks


class OfficialDecoderGraph(DecoderGraph):
    """segment-anything's ONNX decoder interface (return_single_mask=True): adds `orig_im_size`,
    returns (masks at the original size, iou_predictions, low_res_masks) of the best mask, chosen
    as SAM does: the single-mask output when there are more than 2 points, else the best of 1..3."""

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor,
                point_labels: torch.Tensor, mask_input: torch.Tensor,
                has_mask_input: torch.Tensor, orig_im_size: torch.Tensor):
        iou, masks = super().forward(image_embeddings, point_coords, point_labels, mask_input,
                                     has_mask_input)
        reweight = torch.tensor([[1000.0] + [0.0] * (contract.NUM_MASK_OUTPUTS - 1)])
        best = torch.argmax(iou + (point_coords.shape[1] - 2.5) * reweight, dim=1)
        masks = masks[torch.arange(masks.shape[0]), best].unsqueeze(1)
        iou = iou[torch.arange(iou.shape[0]), best].unsqueeze(1)
        size = contract.IMAGE_SIZE
        up = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)
        orig = orig_im_size.to(torch.float32)
        pre = torch.floor(orig * (size / torch.max(orig)) + 0.5).to(torch.int64)
        up = up[..., : pre[0], : pre[1]]
        orig = orig.to(torch.int64)
        up = F.interpolate(up, size=(orig[0], orig[1]), mode="bilinear", align_corners=False)
        return up, iou, masks


def example_inputs(num_points: int = 2, num_prompts: int = 1) -> dict[str, torch.Tensor]:
    """Example inputs named and shaped per the contract (for tracing and smoke checks); the
    decoder's with `num_prompts` prompt sets (the last one uses a mask input)."""
    gen = torch.Generator().manual_seed(0)
    b, low = num_prompts, contract.LOW_RES_SIZE
    has_mask = torch.zeros(b)
    if b > 1:
        has_mask[-1] = 1.0
    return {
        "image": torch.randn(1, 3, contract.IMAGE_SIZE, contract.IMAGE_SIZE, generator=gen),
        "image_embeddings": torch.randn(1, contract.EMBED_DIM, contract.EMBED_SIZE,
                                        contract.EMBED_SIZE, generator=gen),
        "point_coords": torch.rand(b, num_points, 2, generator=gen) * contract.IMAGE_SIZE,
        "point_labels": torch.tensor([[1.0] + [-1.0] * (num_points - 1)] * b),
        "mask_input": torch.randn(b, 1, low, low, generator=gen) * has_mask.view(b, 1, 1, 1),
        "has_mask_input": has_mask,
        "orig_im_size": torch.tensor([1200.0, 1800.0]),
    }
