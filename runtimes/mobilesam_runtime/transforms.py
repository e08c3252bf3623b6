"""SAM's pre- and post-processing in numpy + Pillow (no torch), shared by every runtime."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import contract


def preprocess_shape(h: int, w: int, long_side: int = contract.IMAGE_SIZE) -> tuple[int, int]:
    """(new_h, new_w) after resizing the longest side to `long_side` (SAM's rounding)."""
    scale = long_side * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def resize_image(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> resized uint8, longest side 1024, PIL bilinear (as SAM)."""
    new_h, new_w = preprocess_shape(*image.shape[:2])
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def _normalize_table() -> np.ndarray:
    """[3, 256] float32: (value - mean) / std for every uint8 value, with the same float32
    operations as normalising the image itself (so a look-up is bit-identical to it)."""
    mean = np.asarray(contract.PIXEL_MEAN, np.float32)
    std = np.asarray(contract.PIXEL_STD, np.float32)
    return np.ascontiguousarray(((np.arange(256, dtype=np.float32)[:, None] - mean) / std).T)


_NORMALIZE = _normalize_table()


def normalize_and_pad(resized: np.ndarray) -> np.ndarray:
    """Resized HxWx3 uint8 -> the encoder's 1x3x1024x1024 float32 input: (x - mean) / std per
    channel (a 256-entry look-up written straight into its plane), zero padding right/bottom."""
    size = contract.IMAGE_SIZE
    h, w = resized.shape[:2]
    out = np.empty((1, 3, size, size), np.float32)
    out[0, :, h:] = 0.0
    out[0, :, :h, w:] = 0.0
    for c in range(3):
        np.take(_NORMALIZE[c], resized[:, :, c], out=out[0, c, :h, :w], mode="clip")
    return out


def transform_coords(coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """(..., 2) x/y pixels of the original image -> the resized 1024 frame (float32)."""
    old_h, old_w = original_size
    new_h, new_w = preprocess_shape(old_h, old_w)
    out = np.array(coords, dtype=np.float64)
    out[..., 0] *= new_w / old_w
    out[..., 1] *= new_h / old_h
    return out.astype(np.float32)


def interp_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] matrix equal to torch's 1-D bilinear interpolate, align_corners=False."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    m = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - lam)
    np.add.at(m, (rows, i1), lam)
    return m


def upscale_matrices(input_size: tuple[int, int],
                     original_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Dense row and column matrices (float32) that map 256x256 low-res logits to the original
    size: upsample to 1024, crop to the resized image, resize to the original (SAM's
    postprocess). The reference for `upscale_plans` (tests); too slow for the hot path."""
    size, low = contract.IMAGE_SIZE, contract.LOW_RES_SIZE
    mats = []
    for inp, orig in zip(input_size, original_size):
        first = interp_matrix(low, size)[:inp]  # 256 -> 1024, then crop the padding
        mats.append((interp_matrix(inp, orig) @ first).astype(np.float32))
    return mats[0], mats[1]


TAPS = 3  # inputs one output of the composed map reads: two 2-tap bilinear maps, span <= 3
WINDOW = 4  # inputs one block of outputs reads (a block = outputs sharing that window)


def _bilinear_taps(in_size: int, out_size: int, idx: np.ndarray):
    """torch's align_corners=False taps of outputs `idx`: (i0, i1, weight of i1), float64."""
    src = np.maximum((idx + 0.5) * (in_size / out_size) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    return i0, np.minimum(i0 + 1, in_size - 1), src - i0


def axis_taps(input_len: int, original_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The band of one axis of SAM's postprocess (256 -> 1024, crop to `input_len`, ->
    `original_len`): output j = sum_k weights[j, k] * low_res[start[j] + k], k < TAPS.
    Returns (start [original_len] int64, non-decreasing; weights [original_len, TAPS] float64)."""
    size, low = contract.IMAGE_SIZE, contract.LOW_RES_SIZE
    k0, k1, lam = _bilinear_taps(input_len, original_len, np.arange(original_len, dtype=np.float64))
    start = None
    weights = np.zeros((original_len, TAPS))
    rows = np.arange(original_len)
    for k, wk in ((k0, 1.0 - lam), (k1, lam)):
        l0, l1, mu = _bilinear_taps(low, size, k.astype(np.float64))
        if start is None:  # taps of k0 come first; k1 = k0 or k0 + 1 starts at most one later
            start = np.minimum(l0, low - TAPS)
        weights[rows, l0 - start] += wk * (1.0 - mu)
        weights[rows, l1 - start] += wk * mu
    return start, weights


@dataclass(frozen=True)
class AxisPlan:
    """One axis of the upscaling as blocks of consecutive outputs, each a small dense
    [outputs, <= WINDOW inputs] float32 matrix applied to a window of the low-res axis."""

    size: int  # output length (the original image's side)
    lo: int  # first low-res index any block reads
    hi: int  # one past the last
    blocks: tuple[tuple[int, int, int, int, np.ndarray], ...]  # (out0, out1, in0, in1, weights)


def axis_plan(input_len: int, original_len: int) -> AxisPlan:
    """`axis_taps` grouped into blocks whose outputs read at most WINDOW inputs."""
    start, weights = axis_taps(input_len, original_len)
    step = WINDOW - TAPS + 1  # outputs whose start lies in [s, s + step) share a window
    group = (start - start[0]) // step
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(group)) + 1, [original_len]])
    first = start[bounds[:-1]]
    offset = start - np.repeat(first, np.diff(bounds))
    dense = np.zeros((original_len, WINDOW))
    rows = np.arange(original_len)
    for k in range(TAPS):
        dense[rows, offset + k] += weights[:, k]
    dense = dense.astype(np.float32)
    blocks = []
    for b0, b1, in0 in zip(bounds[:-1].tolist(), bounds[1:].tolist(), first.tolist()):
        width = int(offset[b1 - 1]) + TAPS
        blocks.append((b0, b1, in0, in0 + width, np.ascontiguousarray(dense[b0:b1, :width])))
    return AxisPlan(original_len, int(start[0]), int(start[-1]) + TAPS, tuple(blocks))


def upscale_plans(input_size: tuple[int, int],
                  original_size: tuple[int, int]) -> tuple[AxisPlan, AxisPlan]:
    """Row and column plans of SAM's postprocess for one image (computed once per image)."""
    return (axis_plan(input_size[0], original_size[0]),
            axis_plan(input_size[1], original_size[1]))


def _apply_rows(x: np.ndarray, plan: AxisPlan, first: int) -> np.ndarray:
    """[N, L, W] (low-res rows `first`..) -> [N, plan.size, W]: each block one small einsum
    (numpy's own loops: no BLAS threads to fight the runtime's)."""
    out = np.empty((x.shape[0], plan.size, x.shape[2]), np.float32)
    for o0, o1, i0, i1, w in plan.blocks:
        np.einsum("jk,nkw->njw", w, x[:, i0 - first:i1 - first], out=out[:, o0:o1])
    return out


def upscale_masks(low_res: np.ndarray, rows: AxisPlan, cols: AxisPlan) -> np.ndarray:
    """[..., 256, 256] low-res logits -> [..., H, W] float32 logits with the `upscale_plans`
    of the image (SAM's postprocess_masks, equal to the dense maps to float32 rounding)."""
    if not isinstance(rows, AxisPlan) or not isinstance(cols, AxisPlan):
        raise TypeError(f"rows and cols must be AxisPlan (from upscale_plans), got "
                        f"{type(rows).__name__} and {type(cols).__name__}")
    low = np.asarray(low_res, np.float32)
    n = contract.LOW_RES_SIZE
    if low.ndim < 2 or low.shape[-2:] != (n, n):
        raise ValueError(f"low_res must be [..., {n}, {n}], got shape {low.shape}")
    lead = low.shape[:-2]
    x = low.reshape((-1, n, n))[:, rows.lo:rows.hi]
    # columns first, as rows of the transposed (small) maps: every pass writes whole rows
    t = _apply_rows(np.ascontiguousarray(x.transpose(0, 2, 1)), cols, 0)
    out = _apply_rows(np.ascontiguousarray(t.transpose(0, 2, 1)), rows, rows.lo)
    return out.reshape(lead + out.shape[1:])
