"""SAM's two-way transformer (tokens <-> image) used by the mask decoder."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .common import MLPBlock


class Attention(nn.Module):
    """Multi-head attention with an optional down-projection of the internal width."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.internal_dim = embedding_dim // downsample_rate
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """`key_mask` (B x N_keys, 1 = attend, 0 = ignore) lets fixed-slot graphs drop unused
        prompt slots exactly; None is SAM's behaviour."""
        return self.attend(self.q_proj(q), self.k_proj(k), self.v_proj(v), key_mask)

    def weights(self, q: Tensor, k: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Softmax weights [B, heads, N_q, N_keys] of projected queries and keys."""
        q, k = self._heads(q), self._heads(k)
        attn = (q @ k.permute(0, 1, 3, 2)) / math.sqrt(q.shape[-1])
        if key_mask is not None:
            attn = attn + (key_mask[:, None, None, :] - 1.0) * 1e4
        return torch.softmax(attn, dim=-1)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Attention of projected queries, keys and values, through out_proj."""
        out = self.weights(q, k, key_mask) @ self._heads(v)
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))

    def values_out(self, v: Tensor) -> Tensor:
        """Projected values [B, N_keys, internal] through out_proj head by head (no bias):
        [B, heads * N_keys, C], so that attention = weights as [B, N_q, heads * N_keys] @ this
        + out_proj.bias (cheaper when heads * N_keys < internal: few keys, many queries)."""
        v = self._heads(v)
        b, h, n_keys, c = v.shape
        wo = self.out_proj.weight.t().reshape(h, c, -1)
        return (v @ wo).reshape(b, h * n_keys, -1)


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image, MLP, image->token, each followed by a LayerNorm."""

    def __init__(self, embedding_dim: int, num_heads: int, mlp_dim: int,
                 attention_downsample_rate: int = 2, skip_first_layer_pe: bool = False) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor,
                token_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries, token_mask)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries, token_mask)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries, token_mask))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """`depth` two-way blocks and a final token->image attention."""

    def __init__(self, depth: int = 2, embedding_dim: int = 256, num_heads: int = 8,
                 mlp_dim: int = 2048, attention_downsample_rate: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, attention_downsample_rate,
                                 skip_first_layer_pe=(i == 0))
            for i in range(depth))
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor,
                token_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe, token_mask)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
