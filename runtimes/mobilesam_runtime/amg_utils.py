"""Numpy helpers for segment-everything, with the semantics of segment-anything's
`utils/amg.py` and the torchvision ops it uses (greedy NMS, box area).

Connected components (`remove_small_regions`), polygons and COCO RLE come from OpenCV and
pycocotools, imported lazily: `pip install "mobilesam-runtime[amg]"`.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import numpy as np

AMG_EXTRA = 'pip install "mobilesam-runtime[amg]"'


class MissingExtraError(ImportError):
    """An optional library of the `amg` extra (OpenCV, pycocotools) is not installed."""


def require(module: str, purpose: str):
    """Import `module` (cv2 or pycocotools.mask) or say which extra brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        dist = {"cv2": "opencv-python-headless", "pycocotools.mask": "pycocotools"}.get(module, module)
        raise MissingExtraError(f"{purpose} needs {dist}: {AMG_EXTRA}") from e


# -- prompts and crops ----------------------------------------------------------------------
def build_point_grid(n_per_side: int) -> np.ndarray:
    """n_per_side**2 points (x, y) evenly spaced in [0, 1]^2, cell centres, row by row."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs, ys = np.meshgrid(side, side)  # xs varies along a row, ys down the columns
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer; layer i has int(n_per_side / scale_per_layer**i) points a side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer ** i))) for i in range(n_layers + 1)]


def generate_crop_boxes(im_size: tuple[int, ...], n_layers: int,
                        overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (XYXY) and their layer: the whole image, then (2**(i+1))**2 overlapping crops
    for layer i+1."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes, layers = [[0, 0, im_w, im_h]], [0]
    for i in range(n_layers):
        per_side = 2 ** (i + 1)
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + im_w) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + im_h) / per_side))
        x0s = [int((crop_w - overlap) * k) for k in range(per_side)]
        y0s = [int((crop_h - overlap) * k) for k in range(per_side)]
        for x0, y0 in product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(i + 1)
    return boxes, layers


def batch_iterator(batch_size: int, *arrays):
    """Consecutive slices of `batch_size` rows of equally long arrays."""
    if not arrays or any(len(a) != len(arrays[0]) for a in arrays):
        raise ValueError("batch_iterator needs arrays of one length")
    for start in range(0, len(arrays[0]), batch_size):
        yield [a[start:start + batch_size] for a in arrays]


# -- scores and boxes -----------------------------------------------------------------------
def calculate_stability_score(logits: np.ndarray, mask_threshold: float,
                              threshold_offset: float) -> np.ndarray:
    """IoU of the masks thresholded at threshold +- offset ([..., H, W] -> [...], float32).
    The high mask lies inside the low one, so IoU = area(high) / area(low)."""
    high = np.count_nonzero(logits > (mask_threshold + threshold_offset), axis=(-2, -1))
    low = np.count_nonzero(logits > (mask_threshold - threshold_offset), axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(high, np.float32) / np.asarray(low, np.float32)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of XYXY boxes [N, 4] (torchvision's box_area: no +1)."""
    boxes = np.asarray(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Exact greedy NMS (torchvision's): visit boxes by decreasing score (ties in input order),
    keep a box unless an already kept box overlaps it with IoU > iou_threshold. Arithmetic in
    float32 as torchvision's CPU kernel; returns kept indices by decreasing score (int64)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise ValueError(f"nms: {boxes.shape[0]} boxes but {scores.shape[0]} scores")
    order = np.argsort(-scores, kind="stable")
    b = boxes[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(order), bool)
    keep = []
    zero = np.float32(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(order)):
            if suppressed[i]:
                continue
            keep.append(i)
            rest = slice(i + 1, None)
            w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
            h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            suppressed[rest] |= iou.astype(np.float64) > iou_threshold  # NaN (0/0) never suppresses
    return order[np.asarray(keep, np.int64)].astype(np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray,
                iou_threshold: float) -> np.ndarray:
    """Greedy NMS within each category `idxs`; kept indices by decreasing score (ties in
    input order), as torchvision's batched_nms."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    idxs = np.asarray(idxs).reshape(-1)
    if len(idxs) != len(scores):
        raise ValueError(f"batched_nms: {len(scores)} scores but {len(idxs)} categories")
    cats = np.unique(idxs)
    if len(cats) <= 1:
        return nms(boxes, scores, iou_threshold)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    kept = []
    for c in cats:
        members = np.flatnonzero(idxs == c)
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    keep = np.sort(np.concatenate(kept))
    return keep[np.argsort(-scores[keep], kind="stable")].astype(np.int64)


def box_xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """XYXY -> XYWH along the last axis (a copy)."""
    out = np.array(boxes, copy=True)
    out[..., 2] = out[..., 2] - out[..., 0]
    out[..., 3] = out[..., 3] - out[..., 1]
    return out


def batched_mask_to_box(masks: np.ndarray) -> np.ndarray:
    """Tight XYXY boxes (inclusive pixel indices, int64) of boolean masks [..., H, W] -> [..., 4];
    [0, 0, 0, 0] for an empty mask."""
    masks = np.asarray(masks, bool)
    lead, (h, w) = masks.shape[:-2], masks.shape[-2:]
    if masks.size == 0:
        return np.zeros((*lead, 4), np.int64)
    flat = masks.reshape(-1, h, w)
    rows, cols = flat.any(axis=2), flat.any(axis=1)  # [K, H], [K, W]
    top, left = rows.argmax(axis=1), cols.argmax(axis=1)
    bottom = h - 1 - rows[:, ::-1].argmax(axis=1)
    right = w - 1 - cols[:, ::-1].argmax(axis=1)
    out = np.stack([left, top, right, bottom], axis=-1).astype(np.int64)
    out[~rows.any(axis=1)] = 0
    return out.reshape(*lead, 4)


def is_box_near_crop_edge(boxes: np.ndarray, crop_box: list[int], orig_box: list[int],
                          atol: float = 20.0) -> np.ndarray:
    """Boxes (crop frame) within `atol` px of a crop edge that is not an edge of the image."""
    boxes = uncrop_boxes_xyxy(boxes, crop_box).astype(np.float32)
    crop = np.asarray(crop_box, np.float32)[None]
    orig = np.asarray(orig_box, np.float32)[None]
    near_crop = np.abs(boxes - crop) <= atol
    near_image = np.abs(boxes - orig) <= atol
    return np.any(near_crop & ~near_image, axis=1)


# -- crops back to the image frame ------------------------------------------------------------
def uncrop_boxes_xyxy(boxes: np.ndarray, crop_box: list[int]) -> np.ndarray:
    x0, y0 = crop_box[0], crop_box[1]
    return np.asarray(boxes) + np.array([x0, y0, x0, y0])


def uncrop_points(points: np.ndarray, crop_box: list[int]) -> np.ndarray:
    return np.asarray(points) + np.array([crop_box[0], crop_box[1]])


def uncrop_masks(masks: np.ndarray, crop_box: list[int], orig_h: int, orig_w: int) -> np.ndarray:
    """Masks [..., h, w] of a crop, zero-padded to the original image [..., orig_h, orig_w]."""
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return masks
    pad = [(0, 0)] * (masks.ndim - 2) + [(y0, orig_h - y1), (x0, orig_w - x1)]
    return np.pad(masks, pad)


# -- RLE ------------------------------------------------------------------------------------
def mask_to_rle(masks: np.ndarray) -> list[dict[str, Any]]:
    """Boolean masks [B, H, W] -> uncompressed RLEs (column-major runs, starting with a run of
    zeros), the format pycocotools expects: {"size": [H, W], "counts": [...]}."""
    masks = np.asarray(masks, bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be BxHxW, got shape {masks.shape}")
    _, h, w = masks.shape
    out = []
    for m in masks:
        flat = np.ravel(m, order="F")
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        bounds = np.concatenate([[0], change, [h * w]])
        counts = np.diff(bounds).tolist()
        if flat.size and flat[0]:
            counts = [0] + counts
        out.append({"size": [h, w], "counts": counts})
    return out


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Uncompressed RLE -> HxW bool mask."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], np.int64)
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(w, h).T


def area_from_rle(rle: dict[str, Any]) -> int:
    return int(sum(rle["counts"][1::2]))


def coco_encode_rle(uncompressed_rle: dict[str, Any]) -> dict[str, Any]:
    """Uncompressed RLE -> COCO's compressed RLE ({"size", "counts": str}), JSON-ready."""
    mask_utils = require("pycocotools.mask", "COCO RLE encoding")
    h, w = uncompressed_rle["size"]
    rle = mask_utils.frPyObjects(uncompressed_rle, h, w)
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


# -- OpenCV-backed --------------------------------------------------------------------------
def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes ("holes") or drop islands ("islands") smaller than `area_thresh` pixels
    (8-connectivity); when every island is small the largest stays. Returns (mask, changed)."""
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    cv2 = require("cv2", "min_mask_region_area (connected components)")
    holes = mode == "holes"
    working = (np.asarray(mask, bool) ^ holes).astype(np.uint8)
    n_labels, regions, stats, _ = cv2.connectedComponentsWithStats(working, 8)
    sizes = stats[1:, cv2.CC_STAT_AREA]  # label 0: the other side
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    fill = [0] + small
    if not holes:
        fill = [i for i in range(n_labels) if i not in fill] or [int(np.argmax(sizes)) + 1]
    return np.isin(regions, fill), True


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[np.ndarray]:
    """Outer contours of a HxW bool mask as [K, 2] float arrays of (x, y) pixels."""
    cv2 = require("cv2", "polygon labels")
    contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2).astype(np.float64) for c in contours if len(c) >= min_points]
