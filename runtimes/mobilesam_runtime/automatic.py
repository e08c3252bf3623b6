"""Segment everything: segment-anything's `SamAutomaticMaskGenerator` on an exported bundle.

Same parameters, defaults, filtering order and output records as upstream, so code switches by
changing an import. One difference in the work, not the result: masks are filtered by predicted
IoU on the decoder's scores before any upscaling (upstream upscales every mask first; the
filter reads only the scores), and only the survivors are upscaled to the image size.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import amg_utils as amg
from . import contract

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
UPSCALE_BUDGET = 2 ** 24  # float32 logits upscaled at once (64 MB), bounds peak memory


class _Records:
    """Columns of per-mask data (arrays or lists, one row per mask), filtered and joined."""

    def __init__(self, **columns) -> None:
        self.columns: dict[str, Any] = dict(columns)

    def __getitem__(self, key: str):
        return self.columns[key]

    def __setitem__(self, key: str, value) -> None:
        self.columns[key] = value

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def filter(self, keep: np.ndarray) -> None:
        """Keep rows by a boolean mask or an index array (in that order)."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        for k, v in self.columns.items():
            self.columns[k] = [v[i] for i in idx] if isinstance(v, list) else v[idx]

    def cat(self, other: _Records) -> None:
        for k, v in other.columns.items():
            if k not in self.columns:
                self.columns[k] = v
            elif isinstance(v, list):
                self.columns[k] = self.columns[k] + v
            else:
                self.columns[k] = np.concatenate([self.columns[k], v])


def _real(value, name: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be a finite number in [{lo}, {hi}], got {value!r}")
    return v


def _int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_grids(point_grids, n_layers: int) -> list[np.ndarray]:
    if not isinstance(point_grids, (list, tuple)):
        raise TypeError(f"point_grids must be a list of Nx2 arrays, got {type(point_grids).__name__}")
    if len(point_grids) < n_layers + 1:
        raise ValueError(f"point_grids has {len(point_grids)} grid(s), but crop_n_layers="
                         f"{n_layers} needs one per layer ({n_layers + 1})")
    grids = []
    for i, g in enumerate(point_grids):
        a = np.asarray(g)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"point_grids[{i}] must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float64)
        if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] == 0:
            raise ValueError(f"point_grids[{i}] must be an Nx2 array (N >= 1), got shape {a.shape}")
        if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
            raise ValueError(f"point_grids[{i}] must hold (x, y) normalised to [0, 1]")
        grids.append(a)
    return grids


class SamAutomaticMaskGenerator:
    """Masks for a whole image from a grid of single-point prompts (segment-anything's
    generator); `predictor` is a mobilesam_runtime SamPredictor (from `mobilesam_runtime.load`)."""

    def __init__(self, predictor, points_per_side: int | None = 32, points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95,
                 stability_score_offset: float = 1.0, box_nms_thresh: float = 0.7,
                 crop_n_layers: int = 0, crop_nms_thresh: float = 0.7,
                 crop_overlap_ratio: float = 512 / 1500, crop_n_points_downscale_factor: int = 1,
                 point_grids: list[np.ndarray] | None = None, min_mask_region_area: int = 0,
                 output_mode: str = "binary_mask") -> None:
        for method in ("set_image", "reset_image", "predict_batch_low_res", "upscale_logits"):
            if not callable(getattr(predictor, method, None)):
                raise TypeError(f"predictor must be a mobilesam_runtime SamPredictor (no "
                                f"{method}()), got {type(predictor).__name__}")
        self.crop_n_layers = _int(crop_n_layers, "crop_n_layers", 0)
        self.crop_n_points_downscale_factor = _int(crop_n_points_downscale_factor,
                                                   "crop_n_points_downscale_factor", 1)
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("exactly one of points_per_side or point_grids must be given")
        if points_per_side is not None:
            n = _int(points_per_side, "points_per_side", 1)
            smallest = int(n / self.crop_n_points_downscale_factor ** self.crop_n_layers)
            if smallest < 1:
                raise ValueError(f"points_per_side={n} / crop_n_points_downscale_factor="
                                 f"{self.crop_n_points_downscale_factor}**{self.crop_n_layers} "
                                 f"leaves crop layer {self.crop_n_layers} without points")
            self.point_grids = amg.build_all_layer_point_grids(
                n, self.crop_n_layers, self.crop_n_points_downscale_factor)
        else:
            self.point_grids = _check_grids(point_grids, self.crop_n_layers)
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {', '.join(OUTPUT_MODES)}, got {output_mode!r}")
        if output_mode == "coco_rle":
            amg.require("pycocotools.mask", "output_mode='coco_rle'")
        self.min_mask_region_area = _real(min_mask_region_area, "min_mask_region_area", 0)
        if self.min_mask_region_area > 0:
            amg.require("cv2", "min_mask_region_area > 0")
        self.predictor = predictor
        self.points_per_batch = _int(points_per_batch, "points_per_batch", 1)
        self.pred_iou_thresh = _real(pred_iou_thresh, "pred_iou_thresh")
        self.stability_score_thresh = _real(stability_score_thresh, "stability_score_thresh")
        self.stability_score_offset = _real(stability_score_offset, "stability_score_offset")
        self.box_nms_thresh = _real(box_nms_thresh, "box_nms_thresh", 0, 1)
        self.crop_nms_thresh = _real(crop_nms_thresh, "crop_nms_thresh", 0, 1)
        self.crop_overlap_ratio = _real(crop_overlap_ratio, "crop_overlap_ratio", 0, 1)
        self.output_mode = output_mode

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Mask records for an HxWx3 uint8 RGB image: segmentation (HxW bool, or an RLE dict per
        output_mode), area, bbox (XYWH), predicted_iou, point_coords, stability_score, crop_box."""
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image must be a numpy array (HxWx3 uint8), got {type(image).__name__}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be HxWx3 (3 colour channels), got shape {image.shape}")
        data = self._generate_masks(image)
        if self.min_mask_region_area > 0:
            data = self.postprocess_small_regions(data, self.min_mask_region_area,
                                                  max(self.box_nms_thresh, self.crop_nms_thresh))
        if self.output_mode == "coco_rle":
            segs = [amg.coco_encode_rle(r) for r in data["rles"]]
        elif self.output_mode == "binary_mask":
            segs = [amg.rle_to_mask(r) for r in data["rles"]]
        else:
            segs = data["rles"]
        return [{
            "segmentation": segs[i],
            "area": amg.area_from_rle(data["rles"][i]),
            "bbox": amg.box_xyxy_to_xywh(data["boxes"][i]).tolist(),
            "predicted_iou": data["iou_preds"][i].item(),
            "point_coords": [data["points"][i].tolist()],
            "stability_score": data["stability_score"][i].item(),
            "crop_box": amg.box_xyxy_to_xywh(data["crop_boxes"][i]).tolist(),
        } for i in range(len(segs))]

    # -- stages (upstream's names) -----------------------------------------------------------
    def _generate_masks(self, image: np.ndarray) -> _Records:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = amg.generate_crop_boxes(orig_size, self.crop_n_layers,
                                                         self.crop_overlap_ratio)
        data = _Records()
        for crop_box, layer in zip(crop_boxes, layer_idxs):
            data.cat(self._process_crop(image, crop_box, layer, orig_size))
        if len(crop_boxes) > 1 and len(data):  # duplicates across crops: prefer smaller crops
            scores = np.float32(1) / amg.box_area(data["crop_boxes"]).astype(np.float32)
            data.filter(amg.nms(data["boxes"], scores, self.crop_nms_thresh))
        return data

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int,
                      orig_size: tuple[int, ...]) -> _Records:
        x0, y0, x1, y1 = crop_box
        crop = np.ascontiguousarray(image[y0:y1, x0:x1, :])
        self.predictor.set_image(crop)
        scale = np.array(crop.shape[:2])[None, ::-1]
        points_for_image = self.point_grids[layer] * scale
        data = _Records()
        try:
            for (points,) in amg.batch_iterator(self.points_per_batch, points_for_image):
                data.cat(self._process_batch(points, crop.shape[:2], crop_box, orig_size))
        finally:
            self.predictor.reset_image()
        data.filter(amg.nms(data["boxes"], data["iou_preds"], self.box_nms_thresh))
        data["boxes"] = amg.uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = amg.uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = np.tile(np.asarray(crop_box, np.int64), (len(data), 1))
        return data

    def _process_batch(self, points: np.ndarray, im_size: tuple[int, ...], crop_box: list[int],
                       orig_size: tuple[int, ...]) -> _Records:
        orig_h, orig_w = orig_size
        labels = np.ones((len(points), 1), np.int64)
        scores, low_res = self.predictor.predict_batch_low_res(
            point_coords=points[:, None, :], point_labels=labels, multimask_output=True)
        c = scores.shape[1]
        iou = np.asarray(scores, np.float32).reshape(-1)
        low_res = np.asarray(low_res, np.float32).reshape(-1, *low_res.shape[-2:])
        pts = np.repeat(points, c, axis=0)
        keep = np.flatnonzero(iou > self.pred_iou_thresh) if self.pred_iou_thresh > 0.0 \
            else np.arange(len(iou))
        h, w = im_size
        step = max(1, UPSCALE_BUDGET // (h * w))
        stab, masks, kept = [], [], []
        for start in range(0, len(keep), step):  # only the IoU survivors are upscaled
            idx = keep[start:start + step]
            logits = np.asarray(self.predictor.upscale_logits(low_res[idx]), np.float32)
            s = amg.calculate_stability_score(logits, contract.MASK_THRESHOLD,
                                              self.stability_score_offset)
            ok = s >= self.stability_score_thresh if self.stability_score_thresh > 0.0 \
                else np.ones(len(s), bool)
            stab.append(s[ok])
            masks.append(logits[ok] > contract.MASK_THRESHOLD)
            kept.append(idx[ok])
        kept_idx = np.concatenate(kept) if kept else np.zeros(0, np.int64)
        binary = np.concatenate(masks) if masks else np.zeros((0, h, w), bool)
        data = _Records(iou_preds=iou[kept_idx], points=pts[kept_idx],
                        stability_score=np.concatenate(stab) if stab else np.zeros(0, np.float32))
        data["boxes"] = amg.batched_mask_to_box(binary)
        near = amg.is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if near.any():
            data.filter(~near)
            binary = binary[~near]
        data["rles"] = amg.mask_to_rle(amg.uncrop_masks(binary, crop_box, orig_h, orig_w))
        return data

    @staticmethod
    def postprocess_small_regions(mask_data: _Records, min_area: float, nms_thresh: float) -> _Records:
        """Fill small holes and drop small islands, then NMS again preferring unchanged masks
        (upstream's step; edits mask_data in place)."""
        if len(mask_data["rles"]) == 0:
            return mask_data
        new_masks, scores = [], []
        for rle in mask_data["rles"]:
            mask, changed_holes = amg.remove_small_regions(amg.rle_to_mask(rle), min_area, "holes")
            mask, changed_islands = amg.remove_small_regions(mask, min_area, "islands")
            new_masks.append(mask)
            scores.append(float(not (changed_holes or changed_islands)))
        masks = np.stack(new_masks)
        boxes = amg.batched_mask_to_box(masks)
        keep = amg.nms(boxes, np.asarray(scores, np.float32), nms_thresh)
        for i in keep:
            if scores[i] == 0.0:
                mask_data["rles"][i] = amg.mask_to_rle(masks[i][None])[0]
                mask_data["boxes"][i] = boxes[i]
        mask_data.filter(keep)
        return mask_data
