"""SAM's prompt encoder (points, boxes, low-res mask) with the official parameter names."""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Fourier features of (x, y) in [0, 1] with a fixed random Gaussian matrix."""

    def __init__(self, num_pos_feats: int = 64) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((2, num_pos_feats)))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """Encode coordinates already normalised to [0, 1]; (..., 2) -> (..., 2 * feats)."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def dense(self, h: int, w: int) -> torch.Tensor:
        """Encoding of every cell centre of an h x w grid, as C x H x W."""
        grid = torch.ones((h, w), dtype=torch.float32,
                          device=self.positional_encoding_gaussian_matrix.device)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Embeds points/boxes as sparse tokens and a low-res mask as a dense map."""

    def __init__(self, embed_dim: int = 256, image_embedding_size: tuple[int, int] = (64, 64),
                 input_image_size: tuple[int, int] = (1024, 1024), mask_in_chans: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.num_point_embeddings = 4  # background, foreground, box top-left, box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid, 1 x C x H x W."""
        return self.pe_layer.dense(*self.image_embedding_size).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sparse tokens for points with labels in {-1, 0, 1, 2, 3}, written without indexing
        (a sum of masked embeddings) so that every exporter can trace it. B x N x C."""
        h, w = self.input_image_size
        coords = coords + 0.5  # centre of the pixel
        scale = torch.tensor([1.0 / w, 1.0 / h], dtype=coords.dtype, device=coords.device)
        emb = self.pe_layer.encode(coords * scale)
        labels = labels.unsqueeze(-1)
        emb = emb * (labels != -1).to(emb.dtype)
        emb = emb + self.not_a_point_embed.weight * (labels == -1).to(emb.dtype)
        for i in range(self.num_point_embeddings):
            emb = emb + self.point_embeddings[i].weight * (labels == i).to(emb.dtype)
        return emb

    def embed_mask(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """Dense embedding: the downscaled mask when has_mask_input is 1, else no_mask_embed."""
        has = has_mask_input.reshape(-1, 1, 1, 1)
        dense = self.mask_downscaling(mask_input) * has
        return dense + (1 - has) * self.no_mask_embed.weight.reshape(1, -1, 1, 1)

    def forward(self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None,
                masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's reference semantics: one padding point is appended when there is no box;
        boxes become two corner tokens after the points."""
        bs = next((t.shape[0] for t in (points[0] if points else None, boxes, masks)
                   if t is not None), 1)
        dev = self.no_mask_embed.weight.device
        tokens = [torch.empty((bs, 0, self.embed_dim), device=dev)]
        if points is not None:
            coords, labels = points
            labels = labels.to(torch.float32)
            if boxes is None:
                coords = torch.cat([coords, torch.zeros((bs, 1, 2), device=dev)], dim=1)
                labels = torch.cat([labels, -torch.ones((bs, 1), device=dev)], dim=1)
            tokens.append(self.embed_points(coords, labels))
        if boxes is not None:
            corners = boxes.reshape(-1, 2, 2)
            corner_labels = torch.tensor([[2.0, 3.0]], device=dev).expand(corners.shape[0], 2)
            tokens.append(self.embed_points(corners, corner_labels))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                bs, -1, *self.image_embedding_size)
        return torch.cat(tokens, dim=1), dense
