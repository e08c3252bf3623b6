"""The mask decoder split at the image: the part that depends only on the image embedding
(run once per image) and the part that depends on the prompts (run per click), for prompts
without a mask input. Same weights, same results up to float rounding.

Why it is exact. Without a mask input the image tokens enter the transformer as
E = embedding + no_mask_embed, and change only by attention from the T = N + 5 prompt tokens:
an image->token update is softmax weights [4096, 8 heads x T] times values [8T, 256] — a
low-rank term. So the image tokens are always `a * F + L @ R` with F image-only [4096, 256],
a a per-token scale, L [4096, r] and R [r, 256] small and prompt-dependent:
- a projection (k, q, v, the first transposed conv) is a * (F W) + L @ (R W): F W is image-only;
- a LayerNorm keeps the form: its mean and variance follow from F's centred rows, their squared
  norms and small products with R; the new F is F's centred rows times the gain (image-only).
Counted with torch's FlopCounter: the whole decoder is 3.66 GFLOP per prompt set; split, the
image part is 2.69 GFLOP once per image and the prompt part 2.41 GFLOP with 2 tokens (one click
and SAM's padding point), 3.27 with 6. r grows by 8T + 2 per layer, so this pays for prompts
of a few points only (the runtime's SPLIT_MAX_TOKENS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mobilesam_runtime import contract

from .mask_decoder import MaskDecoder
from .sam import MobileSAM
from .transformer import Attention

# the image state, in the contract's order (DecoderImageGraph returns them so)
STATE_NAMES = tuple(s.name for s in contract.DECODER_STATE)


def pixel_weight(conv: nn.ConvTranspose2d) -> Tensor:
    """A kernel-2 stride-2 ConvTranspose2d as a per-pixel matmul weight [C_in, (2, 2, C_out)]:
    output pixel (2i + a, 2j + b) is input pixel (i, j) @ the (a, b) block."""
    cin, cout = conv.weight.shape[:2]
    return conv.weight.permute(0, 2, 3, 1).reshape(cin, 4 * cout)


def masks_from_upscaled(md: MaskDecoder, y: Tensor, hyper: Tensor, h: int, w: int) -> Tensor:
    """The rest of `output_upscaling` and the hypernetwork product, from the first transposed
    conv's output y [B, h*w, (2, 2, C1)] (bias included) and hyper [B, 4, C2]: masks
    [B, 4, 4h, 4w].

    Every step after the first transposed conv acts on each pixel alone (LayerNorm2d over
    channels, GELU, the second kernel-2 stride-2 transposed conv, the per-pixel product with the
    hypernetwork weights), so they run in "phase" order — (i, j, a, b, a2, b2) for output pixel
    (4i + 2a + a2, 4j + 2b + b2) — and only the 4-channel masks are put in raster order, by one
    transpose at the end: no rearranging of the 64- and 32-channel maps."""
    _, norm, _, up2, _ = md.output_upscaling
    b = y.shape[0]
    y = y.reshape(b, 4 * h * w, -1)
    y = F.gelu(F.layer_norm(y, norm.weight.shape, norm.weight, norm.bias, norm.eps))
    y = F.gelu(y @ pixel_weight(up2) + up2.bias.repeat(4)).reshape(b, 16 * h * w, -1)
    m = (y @ hyper.transpose(1, 2)).reshape(b, h, w, 2, 2, 2, 2, -1)  # (i, j, a, b, a2, b2, m)
    return m.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(b, -1, 4 * h, 4 * w)


def _centred(f: Tensor) -> tuple[Tensor, Tensor]:
    fc = f - f.mean(-1, keepdim=True)
    return fc, (fc * fc).sum(-1)


class DecoderImageGraph(nn.Module):
    """image_embeddings [1,256,64,64] -> the image state (STATE_NAMES): per layer the
    image-only projections and the centred tokens with their squared norms."""

    def __init__(self, model: MobileSAM) -> None:
        super().__init__()
        self.mask_decoder = model.mask_decoder
        self.no_mask_embed = model.prompt_encoder.no_mask_embed
        pe = model.prompt_encoder.get_dense_pe().detach()
        self.register_buffer("key_pe", pe.flatten(2).transpose(1, 2), False)

    def forward(self, image_embeddings: Tensor) -> tuple[Tensor, ...]:
        tr = self.mask_decoder.transformer
        l0, l1 = tr.layers
        f0 = image_embeddings.flatten(2).transpose(1, 2) + self.no_mask_embed.weight
        t0, i0 = l0.cross_attn_token_to_image, l0.cross_attn_image_to_token
        state = [t0.k_proj(f0 + self.key_pe), t0.v_proj(f0), i0.q_proj(f0 + self.key_pe)]
        f0c, f0n = _centred(f0)
        f1 = f0c * l0.norm4.weight
        t1, i1 = l1.cross_attn_token_to_image, l1.cross_attn_image_to_token
        f1c, f1n = _centred(f1)
        f2 = f1c * l1.norm4.weight
        fa = tr.final_attn_token_to_image
        state += [f0c, f0n, f1 @ t1.k_proj.weight.t(), f1 @ t1.v_proj.weight.t(),
                  f1 @ i1.q_proj.weight.t(), f1c, f1n, f2 @ fa.k_proj.weight.t(),
                  f2 @ fa.v_proj.weight.t(), f2 @ pixel_weight(self.mask_decoder.output_upscaling[0])]
        return tuple(state)


class _Keys:
    """Image tokens a * F + L @ R (F image-only and implicit: its projections come from the
    state)."""

    def __init__(self, a, low: Tensor, right: Tensor) -> None:
        self.a, self.low, self.right = a, low, right

    def project(self, fw: Tensor, weight: Tensor, const: Tensor) -> Tensor:
        """(tokens) @ weight.T + const, given fw = F @ weight.T."""
        scale = self.a if isinstance(self.a, float) else self.a.unsqueeze(-1)
        return scale * fw + self.low @ (self.right @ weight) + const

    def add(self, low: Tensor, right: Tensor) -> None:
        self.low = torch.cat([self.low, low], -1)
        self.right = torch.cat([self.right, right], 1)

    def layer_norm(self, norm: nn.LayerNorm, fc: Tensor, fn: Tensor) -> None:
        """norm(tokens), with fc / fn F's centred rows and their squared norms; afterwards F is
        fc * norm.weight (the next state entry)."""
        rc = self.right - self.right.mean(-1, keepdim=True)
        cross = ((fc @ rc.transpose(1, 2)) * self.low).sum(-1)
        quad = ((self.low @ (rc @ rc.transpose(1, 2))) * self.low).sum(-1)
        var = (self.a * self.a * fn + 2.0 * self.a * cross + quad) / fc.shape[-1]
        s = torch.rsqrt(var + norm.eps)
        b = self.low.shape[0]
        ones = torch.ones_like(self.low[..., :1])
        self.a = self.a * s
        self.low = torch.cat([self.low * s.unsqueeze(-1), ones], -1)
        self.right = torch.cat([rc * norm.weight, norm.bias.expand(b, 1, -1)], 1)


class DecoderPromptsGraph(nn.Module):
    """The image state + point_coords [B,N,2], point_labels [B,N] -> iou_predictions [B,4],
    low_res_masks [B,4,256,256]: DecoderGraph's outputs for has_mask_input = 0."""

    def __init__(self, model: MobileSAM) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        pe = model.prompt_encoder.get_dense_pe().detach().flatten(2).transpose(1, 2)
        tr = model.mask_decoder.transformer
        # the image-independent terms of the projections that see the positional encoding,
        # key_pe @ W.T + b, as constants (not three 4096 x 256 x 128 products per prompt set)
        with torch.no_grad():
            for name, lin in (("t1_kc", tr.layers[1].cross_attn_token_to_image.k_proj),
                              ("i1_qc", tr.layers[1].cross_attn_image_to_token.q_proj),
                              ("tf_kc", tr.final_attn_token_to_image.k_proj)):
                self.register_buffer(name, pe @ lin.weight.t() + lin.bias, False)

    @staticmethod
    def _image_to_token(attn: Attention, q_img: Tensor, queries: Tensor,
                        qpe: Tensor) -> tuple[Tensor, Tensor]:
        """The image tokens' update as (L, R): softmax weights per head (and a ones column),
        the values through out_proj per head (and its bias)."""
        w = attn.weights(q_img, attn.k_proj(queries + qpe))
        b, h, n, t = w.shape
        return (torch.cat([w.transpose(1, 2).reshape(b, n, h * t),
                           torch.ones_like(w[:, 0, :, :1])], -1),
                torch.cat([attn.values_out(attn.v_proj(queries)),
                           attn.out_proj.bias.expand(b, 1, -1)], 1))

    def forward(self, t0_k, t0_v, i0_q, f0c, f0n, t1_k, t1_v, i1_q, f1c, f1n, tf_k, tf_v, up_f,
                point_coords: Tensor, point_labels: Tensor) -> tuple[Tensor, Tensor]:
        md = self.mask_decoder
        tr = md.transformer
        l0, l1 = tr.layers
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels)
        out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
        qpe = torch.cat((out_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse), dim=1)
        # layer 0: the image tokens are F0 exactly, so its projections are the state's
        queries = l0.norm1(l0.self_attn(qpe, qpe, qpe))
        t0 = l0.cross_attn_token_to_image
        queries = l0.norm2(queries + t0.attend(t0.q_proj(queries + qpe), t0_k, t0_v))
        queries = l0.norm3(queries + l0.mlp(queries))
        keys = _Keys(1.0, *self._image_to_token(l0.cross_attn_image_to_token, i0_q, queries, qpe))
        keys.layer_norm(l0.norm4, f0c, f0n)
        # layer 1 on a * F1 + L @ R
        q = queries + qpe
        queries = l1.norm1(queries + l1.self_attn(q, q, queries))
        t1 = l1.cross_attn_token_to_image
        k = keys.project(t1_k, t1.k_proj.weight.t(), self.t1_kc)
        v = keys.project(t1_v, t1.v_proj.weight.t(), t1.v_proj.bias)
        queries = l1.norm2(queries + t1.attend(t1.q_proj(queries + qpe), k, v))
        queries = l1.norm3(queries + l1.mlp(queries))
        i1 = l1.cross_attn_image_to_token
        q_img = keys.project(i1_q, i1.q_proj.weight.t(), self.i1_qc)
        keys.add(*self._image_to_token(i1, q_img, queries, qpe))
        keys.layer_norm(l1.norm4, f1c, f1n)
        # final token->image attention, then the masks from a * F2 + L @ R
        fa = tr.final_attn_token_to_image
        k = keys.project(tf_k, fa.k_proj.weight.t(), self.tf_kc)
        v = keys.project(tf_v, fa.v_proj.weight.t(), fa.v_proj.bias)
        queries = tr.norm_final_attn(queries + fa.attend(fa.q_proj(queries + qpe), k, v))
        up1 = md.output_upscaling[0]
        y = keys.project(up_f, pixel_weight(up1), up1.bias.repeat(4))
        mask_out = queries[:, 1:1 + md.num_mask_tokens, :]
        hyper = torch.stack([mlp(mask_out[:, i, :])
                             for i, mlp in enumerate(md.output_hypernetworks_mlps)], dim=1)
        h, w = self.prompt_encoder.image_embedding_size
        return md.iou_prediction_head(queries[:, 0, :]), masks_from_upscaled(md, y, hyper, h, w)
