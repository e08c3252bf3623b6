"""Segment-everything: our numpy helpers against segment-anything's semantics, and our
`SamAutomaticMaskGenerator` on an ONNX fp32 bundle against upstream's own generator
(`mobile_sam` from mobilesam-mirror, eager torch) with the same seeded random weights.

Random weights give no confident masks at SAM's defaults, so the conformance test lowers the
filters (see PARAMS) and uses small grids (upstream's eager decoder is the slow part)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import mobilesam_runtime
from mobilesam_runtime import amg_utils as amg
from mobilesam_runtime.automatic import SamAutomaticMaskGenerator

SHIMS = Path(__file__).parent / "upstream_shims"
# Random weights: predicted IoUs ~0.02-0.16, stability scores ~0.03-0.87, and every mask spans
# nearly the whole image (its box is the image), so box NMS would keep one mask: it is off here
# (box_nms_thresh=1.0) and tested exactly on its own (test_nms_is_exact_greedy). These filters
# keep about half of the 3 masks per point: 24 distinct masks (areas 15-70% of the image) from
# the 4x4 grid on dog.jpg.
PARAMS = dict(points_per_side=4, pred_iou_thresh=0.06, stability_score_thresh=0.4,
              stability_score_offset=1.0, box_nms_thresh=1.0)


@pytest.fixture(scope="module")
def upstream(loaded):
    sys.path.insert(0, str(SHIMS))
    try:
        try:
            import mobile_sam
        except ImportError as e:
            raise RuntimeError("upstream reference missing: pip install --no-deps mobilesam-mirror") from e
        model = mobile_sam.sam_model_registry["vit_t"]()
        model.load_state_dict(loaded.model.state_dict(), strict=True)
        model.eval()
        from mobile_sam.utils import amg as upstream_amg
        return mobile_sam, model, upstream_amg
    finally:
        sys.path.remove(str(SHIMS))


@pytest.fixture(scope="module")
def onnx_predictor(export):
    return mobilesam_runtime.load(export("onnx", "fp32"))


# -- helpers vs upstream's utils/amg.py ------------------------------------------------------
def test_grids_and_crop_boxes_match_upstream(upstream):
    _, _, up = upstream
    for n, layers, scale in ((32, 0, 1), (8, 2, 2), (5, 1, 1), (1, 0, 1)):
        ours = amg.build_all_layer_point_grids(n, layers, scale)
        theirs = up.build_all_layer_point_grids(n, layers, scale)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)
    for size, layers, ratio in (((1200, 1800), 2, 512 / 1500), ((427, 640), 1, 0.3), ((7, 5), 3, 0.5)):
        assert amg.generate_crop_boxes(size, layers, ratio) == up.generate_crop_boxes(size, layers, ratio)


def _random_masks(rng, n, h, w):
    """Blobby masks of varied sizes, plus an empty and a full one."""
    yy, xx = np.mgrid[:h, :w]
    masks = []
    for _ in range(n):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, max(h, w) / 2)
        masks.append(((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) ^ (rng.random((h, w)) < 0.02))
    masks += [np.zeros((h, w), bool), np.ones((h, w), bool)]
    return np.stack(masks)


def test_mask_helpers_match_upstream(upstream):
    import torch

    _, _, up = upstream
    rng = np.random.default_rng(0)
    masks = _random_masks(rng, 20, 37, 53)
    t = torch.as_tensor(masks)
    np.testing.assert_array_equal(amg.batched_mask_to_box(masks), up.batched_mask_to_box(t).numpy())
    np.testing.assert_array_equal(amg.batched_mask_to_box(masks[0]), up.batched_mask_to_box(t[0]).numpy())
    ours, theirs = amg.mask_to_rle(masks), up.mask_to_rle_pytorch(t)
    assert ours == theirs
    for rle, m in zip(ours, masks):
        np.testing.assert_array_equal(amg.rle_to_mask(rle), m)
        assert amg.area_from_rle(rle) == up.area_from_rle(rle) == m.sum()
    logits = rng.normal(0, 3, (6, 40, 30)).astype(np.float32)
    np.testing.assert_array_equal(amg.calculate_stability_score(logits, 0.0, 1.0),
                                  up.calculate_stability_score(torch.as_tensor(logits), 0.0, 1.0).numpy())
    boxes = amg.batched_mask_to_box(masks)
    crop, orig = [10, 5, 40, 30], [0, 0, 60, 45]
    np.testing.assert_array_equal(amg.is_box_near_crop_edge(boxes, crop, orig),
                                  up.is_box_near_crop_edge(torch.as_tensor(boxes), crop, orig).numpy())
    np.testing.assert_array_equal(amg.uncrop_masks(masks, crop, 60, 45),
                                  up.uncrop_masks(t, crop, 60, 45).numpy())
    np.testing.assert_array_equal(amg.uncrop_points(np.ones((3, 2)), crop),
                                  up.uncrop_points(torch.ones(3, 2), crop).numpy())
    np.testing.assert_array_equal(amg.box_xyxy_to_xywh(boxes[0]), up.box_xyxy_to_xywh(boxes[0]))


def _brute_nms(boxes, scores, thr):
    """Greedy NMS spelled out pair by pair, the textbook definition; the IoU ratio rounded to
    float32 as torchvision computes it (integer boxes: areas are exact)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable
    keep = []
    for i in order:
        ok = True
        for j in keep:
            x1, y1 = max(boxes[i][0], boxes[j][0]), max(boxes[i][1], boxes[j][1])
            x2, y2 = min(boxes[i][2], boxes[j][2]), min(boxes[i][3], boxes[j][3])
            inter = max(0, x2 - x1) * max(0, y2 - y1)
            ai = (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])
            aj = (boxes[j][2] - boxes[j][0]) * (boxes[j][3] - boxes[j][1])
            union = ai + aj - inter
            if union > 0 and float(np.float32(inter) / np.float32(union)) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(5))
def test_nms_is_exact_greedy(upstream, seed):
    import torch
    from torchvision.ops.boxes import batched_nms as shim_batched_nms  # the shim, via upstream

    rng = np.random.default_rng(seed)
    n = 300
    xy = rng.integers(0, 100, (n, 2))
    wh = rng.integers(0, 40, (n, 2))  # includes empty boxes
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.integers(0, 20, n).astype(np.float32) / 20  # many ties
    for thr in (0.0, 0.3, 0.7, 1.0):
        expected = _brute_nms(boxes.tolist(), scores.tolist(), thr)
        assert amg.nms(boxes, scores, thr).tolist() == expected
        cats = rng.integers(0, 3, n)
        per_cat = sorted((i for c in range(3) for i in
                          np.flatnonzero(cats == c)[_brute_nms(boxes[cats == c].tolist(),
                                                               scores[cats == c].tolist(), thr)]),
                         key=lambda i: (-scores[i], i))
        assert amg.batched_nms(boxes, scores, cats, thr).tolist() == per_cat
        shim = shim_batched_nms(torch.as_tensor(boxes).float(), torch.as_tensor(scores),
                                torch.as_tensor(cats), thr)
        assert shim.tolist() == per_cat  # the stand-in upstream runs on is exact too


def test_remove_small_regions_matches_upstream(upstream):
    _, _, up = upstream
    rng = np.random.default_rng(1)
    for m in _random_masks(rng, 8, 60, 80):
        for mode in ("holes", "islands"):
            for area in (0, 5, 50, 10_000):
                a, ca = amg.remove_small_regions(m, area, mode)
                b, cb = up.remove_small_regions(m, area, mode)
                assert ca == cb
                np.testing.assert_array_equal(a, b)


def test_coco_rle_matches_upstream(upstream):
    _, _, up = upstream
    for rle in amg.mask_to_rle(_random_masks(np.random.default_rng(2), 4, 30, 20)):
        assert amg.coco_encode_rle(rle) == up.coco_encode_rle(rle)


# -- the generator -------------------------------------------------------------------------
class _Fake:
    """Has the predictor methods the generator checks for; never called here."""

    def set_image(self, image): ...
    def reset_image(self): ...
    def predict_batch_low_res(self, **kw): ...
    def upscale_logits(self, low_res): ...


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(points_per_side=None), ValueError, "exactly one of points_per_side or point_grids"),
    (dict(point_grids=[np.zeros((4, 2))]), ValueError, "exactly one"),
    (dict(points_per_side=0), ValueError, "points_per_side must be >= 1"),
    (dict(points_per_side=2.5), TypeError, "points_per_side must be an int"),
    (dict(points_per_batch=0), ValueError, "points_per_batch"),
    (dict(pred_iou_thresh="0.8"), TypeError, "pred_iou_thresh must be a real number"),
    (dict(stability_score_thresh=float("nan")), ValueError, "stability_score_thresh"),
    (dict(box_nms_thresh=1.5), ValueError, "box_nms_thresh"),
    (dict(crop_n_layers=-1), ValueError, "crop_n_layers"),
    (dict(crop_n_layers=3, points_per_side=4, crop_n_points_downscale_factor=2), ValueError,
     "without points"),
    (dict(points_per_side=None, point_grids=[np.full((3, 2), 2.0)]), ValueError, "normalised"),
    (dict(points_per_side=None, point_grids=[np.zeros((3, 2))], crop_n_layers=1), ValueError,
     "one per layer"),
    (dict(output_mode="png"), ValueError, "output_mode must be one of"),
    (dict(min_mask_region_area=-1), ValueError, "min_mask_region_area"),
])
def test_generator_arguments_are_checked(kwargs, error, words):
    with pytest.raises(error, match=words):
        SamAutomaticMaskGenerator(_Fake(), **kwargs)


def test_generator_needs_a_runtime_predictor_and_an_image():
    with pytest.raises(TypeError, match="predictor must be a mobilesam_runtime SamPredictor"):
        SamAutomaticMaskGenerator(object())
    gen = SamAutomaticMaskGenerator(_Fake())
    with pytest.raises(TypeError, match="numpy array"):
        gen.generate([[1, 2, 3]])
    with pytest.raises(ValueError, match="HxWx3"):
        gen.generate(np.zeros((4, 4), np.uint8))


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    for kwargs in (dict(min_mask_region_area=100), dict(output_mode="coco_rle")):
        with pytest.raises(mobilesam_runtime.MissingExtraError, match=r'mobilesam-runtime\[amg\]'):
            SamAutomaticMaskGenerator(_Fake(), **kwargs)
    with pytest.raises(ImportError, match="opencv-python-headless"):
        amg.remove_small_regions(np.zeros((3, 3), bool), 1, "holes")


def _match(ours, theirs, min_iou=0.9):
    """Greedy one-to-one matching by mask IoU (highest first); returns matched IoUs."""
    a = np.stack([r["segmentation"] for r in ours]).reshape(len(ours), -1).astype(np.float32)
    b = np.stack([r["segmentation"] for r in theirs]).reshape(len(theirs), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    matched = []
    while iou.size and iou.max() >= min_iou:
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        matched.append((int(i), int(j), float(iou[i, j])))
        iou[i, :] = -1
        iou[:, j] = -1
    return matched


def _check_records(records, image):
    h, w = image.shape[:2]
    for r in records:
        assert set(r) == {"segmentation", "area", "bbox", "predicted_iou", "point_coords",
                          "stability_score", "crop_box"}
        m = r["segmentation"]
        assert m.shape == (h, w) and m.dtype == bool and r["area"] == int(m.sum()) > 0
        assert all(isinstance(v, int) for v in r["bbox"] + r["crop_box"])
        x, y, bw, bh = r["bbox"]
        ys, xs = np.nonzero(m)
        assert (x, y, x + bw, y + bh) == (xs.min(), ys.min(), xs.max(), ys.max())
        assert isinstance(r["predicted_iou"], float) and isinstance(r["stability_score"], float)
        assert len(r["point_coords"]) == 1 and len(r["point_coords"][0]) == 2


def _compare(upstream, predictor, image, name, **params):
    mobile_sam, model, _ = upstream
    theirs = mobile_sam.SamAutomaticMaskGenerator(model, **params).generate(image)
    ours = SamAutomaticMaskGenerator(predictor, **params).generate(image)
    _check_records(ours, image)
    assert len(theirs) >= 10, f"only {len(theirs)} upstream masks: thresholds too strict"
    matched = _match(ours, theirs)
    share = len(matched) / len(theirs)
    print(f"{name}: ours {len(ours)}, upstream {len(theirs)}, matched {len(matched)} "
          f"({share:.1%}) at IoU >= 0.9, min IoU {min(m[2] for m in matched):.4f}")
    assert share >= 0.95
    assert len(matched) / len(ours) >= 0.95  # and no crowd of extra masks on our side
    for i, j, _ in matched:  # each pair is the same prompt's same mask, not a look-alike
        assert ours[i]["point_coords"][0] == pytest.approx(theirs[j]["point_coords"][0])
        assert ours[i]["crop_box"] == theirs[j]["crop_box"]
        assert ours[i]["predicted_iou"] == pytest.approx(theirs[j]["predicted_iou"], abs=1e-3)
        assert ours[i]["stability_score"] == pytest.approx(theirs[j]["stability_score"], abs=0.02)
    return ours, theirs


def test_everything_matches_upstream_generator(upstream, onnx_predictor, photos):
    _compare(upstream, onnx_predictor, photos["dog"], "dog 4x4", **PARAMS)


@pytest.mark.slow
@pytest.mark.parametrize("name,extra", [
    ("grace_hopper", dict(points_per_side=8)),
    # crops: random-weight masks fill each crop and so touch its edges, so the crop-edge filter
    # drops them and the whole-image layer remains; cross-crop NMS off for the same reason as
    # box NMS. min_mask_region_area: holes and islands below 400 px filled/removed (OpenCV).
    ("flower", dict(crop_n_layers=1, crop_n_points_downscale_factor=2, crop_nms_thresh=1.0,
                    min_mask_region_area=400)),
])
def test_everything_matches_upstream_generator_more(upstream, onnx_predictor, photos, name, extra):
    _compare(upstream, onnx_predictor, photos[name], f"{name} {extra}", **{**PARAMS, **extra})
