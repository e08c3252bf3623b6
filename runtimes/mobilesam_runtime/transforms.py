"""SAM's pre- and post-processing in numpy + Pillow (no torch), shared by every runtime."""

from __future__ import annotations

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


def normalize_and_pad(resized: np.ndarray) -> np.ndarray:
    """Resized HxWx3 uint8 -> the encoder's 1x3x1024x1024 float32 input."""
    mean = np.asarray(contract.PIXEL_MEAN, np.float32)
    std = np.asarray(contract.PIXEL_STD, np.float32)
    x = (resized.astype(np.float32) - mean) / std
    size = contract.IMAGE_SIZE
    out = np.zeros((1, 3, size, size), np.float32)
    out[0, :, : x.shape[0], : x.shape[1]] = x.transpose(2, 0, 1)
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
    """Row and column matrices (float32) that map 256x256 low-res logits to the original size:
    upsample to 1024, crop to the resized image, resize to the original (SAM's postprocess)."""
    size, low = contract.IMAGE_SIZE, contract.LOW_RES_SIZE
    mats = []
    for inp, orig in zip(input_size, original_size):
        first = interp_matrix(low, size)[:inp]  # 256 -> 1024, then crop the padding
        mats.append((interp_matrix(inp, orig) @ first).astype(np.float32))
    return mats[0], mats[1]


def upscale_masks(low_res: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """C x 256 x 256 logits -> C x H x W logits with precomputed `upscale_matrices`."""
    return rows @ low_res @ cols.T
