"""`mobilesam-export segment` on an ONNX fp32 bundle: two photos and a broken file in a folder;
overlays and labels written per photo (atomically), the broken file reported and skipped, and
the labels equal to what the runtime's predictor/generator return for the same prompts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils  # the amg extra (installed by the dev/all extras)
import pytest
from PIL import Image

import mobilesam_runtime
from mobilesam_export import cli, segment
from mobilesam_runtime import SamAutomaticMaskGenerator

# pycocotools 2.0.11 decode() with numpy 2 (known, harmless; encoding does not warn)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn.t accept a copy keyword")
# random weights: see tests/test_automatic.py PARAMS
EVERYTHING = ["--points-per-side", "4", "--pred-iou-thresh", "0.06", "--stability-score-thresh", "0.4",
              "--box-nms-thresh", "1.0"]
PHOTOS = ("dog", "grace_hopper")


@pytest.fixture(scope="module")
def bundle(export):
    return export("onnx", "fp32")


@pytest.fixture(scope="module")
def predictor(bundle):
    return mobilesam_runtime.load(bundle)


@pytest.fixture
def folder(tmp_path, photos):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(photos["dog"]).save(d / "dog.png")  # lossless: same pixels as the fixture
    Image.fromarray(photos["grace_hopper"]).save(d / "grace_hopper.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (d / "notes.md").write_text("not an image: ignored in folders")
    return d


def _run(*argv) -> int:
    return cli.main(["segment", *map(str, argv), "--quiet"])


def _coco_masks(path: Path) -> tuple[dict, np.ndarray]:
    data = json.loads(path.read_text())
    masks = [mask_utils.decode(a["segmentation"]).astype(bool) for a in data["annotations"]]
    return data, np.stack(masks) if masks else np.zeros((0,), bool)


def _no_temp_files(out: Path) -> None:
    assert not [p for p in out.iterdir() if p.name.startswith(".")], list(out.iterdir())


def test_everything_writes_overlays_and_coco_and_skips_the_broken_file(folder, bundle, predictor,
                                                                      photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(bundle, folder, "--out", out, "--everything", *EVERYTHING) == 1  # one bad file
    err = capsys.readouterr()
    assert "broken.jpg" in err.err and "skipped 1 bad file" in err.out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dog.json", "dog.overlay.png", "grace_hopper.json", "grace_hopper.overlay.png"]
    gen = SamAutomaticMaskGenerator(predictor, points_per_side=4, pred_iou_thresh=0.06,
                                    stability_score_thresh=0.4, box_nms_thresh=1.0)
    for name in PHOTOS:
        image = photos[name]
        data, masks = _coco_masks(out / f"{name}.json")
        expected = gen.generate(image)
        assert len(expected) >= 10 and len(masks) == len(expected)
        np.testing.assert_array_equal(masks, np.stack([r["segmentation"] for r in expected]))
        assert [a["bbox"] for a in data["annotations"]] == [r["bbox"] for r in expected]
        assert data["images"][0] == {"id": 1, "file_name": f"{name}.png", "height": image.shape[0],
                                     "width": image.shape[1]}
        pic = np.asarray(Image.open(out / f"{name}.overlay.png"))
        assert pic.shape == image.shape
        changed = np.any(pic != image, axis=-1)
        union = np.any(masks, axis=0)
        assert changed[union].mean() > 0.9 and not changed[~union].any()  # colour only on masks
    _no_temp_files(out)


def test_boxes_from_yolo_to_yolo_polygons(folder, bundle, predictor, photos, tmp_path):
    labels = tmp_path / "det"
    labels.mkdir()
    det = {"dog": ["3 0.5 0.5 0.6 0.7", "7 0.25 0.3 0.3 0.4 0.91"], "grace_hopper": ["0 0.5 0.4 0.5 0.5"]}
    for stem, lines in det.items():
        (labels / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert _run(bundle, folder / "dog.png", folder / "grace_hopper.png", "--out", out,
                "--boxes", labels, "--labels", "yolo") == 0
    for stem, lines in det.items():
        h, w = photos[stem].shape[:2]
        rows = (out / f"{stem}.txt").read_text().splitlines()
        assert [r.split()[0] for r in rows] == [ln.split()[0] for ln in lines]  # classes kept
        predictor.set_image(photos[stem])
        for row, ln in zip(rows, lines):
            xy = np.array(row.split()[1:], float).reshape(-1, 2)
            assert len(xy) >= 3 and xy.min() >= 0 and xy.max() <= 1
            _, cx, cy, bw, bh = map(float, ln.split()[:5])
            box = np.array([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
            mask = predictor.predict(box=box, multimask_output=False)[0][0]
            ys, xs = np.nonzero(mask)
            px = xy * [w, h]  # the polygon lies on the mask's pixels
            inside = mask[np.clip(px[:, 1].round().astype(int), 0, h - 1),
                          np.clip(px[:, 0].round().astype(int), 0, w - 1)]
            assert inside.mean() > 0.9
            assert xs.min() <= px[:, 0].min() + 1 and px[:, 0].max() <= xs.max() + 1
    _no_temp_files(out)


def test_boxes_from_coco_and_points_give_the_predictors_masks(folder, bundle, predictor, photos,
                                                             tmp_path):
    coco = {"images": [{"id": 5, "file_name": "some/dir/dog.png"}],
            "annotations": [{"id": 1, "image_id": 5, "bbox": [100, 80, 400, 300], "category_id": 18},
                            {"id": 2, "image_id": 5, "bbox": [500, 50, 200, 250], "category_id": 3}]}
    (tmp_path / "det.json").write_text(json.dumps(coco))
    out = tmp_path / "boxes"
    assert _run(bundle, folder / "dog.png", "--out", out, "--boxes", tmp_path / "det.json") == 0
    data, masks = _coco_masks(out / "dog.json")
    assert [a["category_id"] for a in data["annotations"]] == [18, 3]
    predictor.set_image(photos["dog"])
    for m, a in zip(masks, coco["annotations"]):
        x, y, bw, bh = a["bbox"]
        expected = predictor.predict(box=np.array([x, y, x + bw, y + bh]), multimask_output=False)[0][0]
        assert np.count_nonzero(m != expected) <= 1e-4 * m.size  # batched vs single decoder

    out = tmp_path / "points"
    assert _run(bundle, folder / "dog.png", "--out", out, "--points", "200,150; 600,300") == 0
    data, masks = _coco_masks(out / "dog.json")
    for m, (x, y) in zip(masks, [(200, 150), (600, 300)]):
        ms, scores, _ = predictor.predict(point_coords=np.array([[x, y]]), point_labels=np.array([1]))
        assert np.count_nonzero(m != ms[scores.argmax()]) <= 1e-4 * m.size
    assert len(masks) == 2


@pytest.mark.parametrize("argv,message", [
    (["--points", "1,2;three,4"], "item 2"),
    (["--points", ";"], "no points"),
    (["--boxes", "missing.json"], "neither a file nor a folder"),
])
def test_bad_arguments_are_clear_errors(folder, bundle, tmp_path, capsys, argv, message):
    assert _run(bundle, folder, "--out", tmp_path / "out", *argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_label_file_skips_only_that_image(folder, bundle, tmp_path, capsys):
    labels = tmp_path / "det"
    labels.mkdir()
    (labels / "dog.txt").write_text("0 0.5 0.5 oops 0.2\n")
    (labels / "grace_hopper.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    out = tmp_path / "out"
    assert _run(bundle, folder / "dog.png", folder / "grace_hopper.png", "--out", out,
                "--boxes", labels) == 1
    assert "dog.txt:1" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["grace_hopper.json", "grace_hopper.overlay.png"]


def test_write_atomic_leaves_old_file_or_new_never_partial(tmp_path):
    target = tmp_path / "a.json"
    segment.write_atomic(target, b"old")
    with pytest.raises(TypeError):
        segment.write_atomic(target, "not bytes")  # fails mid-write
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    segment.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"


def test_yolo_box_parsing():
    boxes, classes = segment.yolo_boxes("2 0.5 0.5 0.5 0.25\n\n0 0.1 0.1 0.2 0.2 0.9\n", (100, 200), "x")
    np.testing.assert_allclose(boxes, [[50, 37.5, 150, 62.5], [0, 0, 40, 20]])
    assert classes == [2, 0]
    for bad in ("1 2 3", "a 0.5 0.5 0.1 0.1", "1.5 0.5 0.5 0.1 0.1", "0 0.5 0.5 -1 0.1"):
        with pytest.raises(segment.InputError):
            segment.yolo_boxes(bad, (10, 10), "x")
