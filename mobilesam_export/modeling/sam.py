"""The MobileSAM container: image encoder, prompt encoder, mask decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mobilesam_runtime import contract

from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .tiny_vit import TinyViT


class MobileSAM(nn.Module):
    """Same submodule names as the official checkpoint (`image_encoder`, `prompt_encoder`,
    `mask_decoder`); pixel mean/std are non-persistent buffers as upstream."""

    def __init__(self) -> None:
        super().__init__()
        size = contract.IMAGE_SIZE
        self.image_encoder = TinyViT(img_size=size)
        self.prompt_encoder = PromptEncoder(contract.EMBED_DIM, (contract.EMBED_SIZE,) * 2,
                                            (size, size), 16)
        self.mask_decoder = MaskDecoder(contract.EMBED_DIM)
        self.register_buffer("pixel_mean", torch.tensor(contract.PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(contract.PIXEL_STD).view(-1, 1, 1), False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a 1x3xHxW 0..255 RGB tensor and zero-pad it to 1024x1024 (bottom/right)."""
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        return F.pad(x, (0, self.image_encoder.img_size - w, 0, self.image_encoder.img_size - h))

    def postprocess_masks(self, masks: torch.Tensor, input_size: tuple[int, int],
                          original_size: tuple[int, int]) -> torch.Tensor:
        """Upscale low-res logits to 1024, crop the padding, resize to the original size."""
        size = self.image_encoder.img_size
        masks = F.interpolate(masks, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)
