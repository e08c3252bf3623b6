"""`mobilesam-export segment`: masks for images from an exported bundle (no torch), written as a
colour overlay PNG a person can look at plus labels (COCO JSON with RLE, or YOLO polygons).

Prompts: `--everything` (SAM's automatic mask generator), `--points` (one object per point), or
`--boxes` (detector output: COCO JSON, or YOLO `class cx cy w h` label files). Each output file
is written atomically (temp file, then rename); a bad image is reported and skipped.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from mobilesam_runtime import amg_utils as amg
from mobilesam_runtime.sample_images import IMAGE_SUFFIXES

LABEL_FORMATS = ("coco", "yolo")
CHUNK = 16  # prompts per decoder call here: bounds the full-size masks held at once


class InputError(ValueError):
    """A bad prompt file or argument (reported, nothing written for it)."""


@dataclass
class Prompts:
    """What to segment: everything, points (x, y px; one object each) or boxes (XYXY px)."""

    mode: str  # "everything" | "points" | "boxes"
    points: np.ndarray | None = None
    boxes: Callable[[Path, tuple[int, int]], tuple[np.ndarray, list[int]]] | None = None
    generator: Any = None  # a SamAutomaticMaskGenerator, for "everything"


# -- arguments and prompt files ------------------------------------------------------------
def parse_points(text: str) -> np.ndarray:
    """"x,y;x,y" (pixels of the original image) -> [P, 2] float64."""
    pts = []
    for i, part in enumerate(p for p in text.split(";") if p.strip()):
        try:
            x, y = (float(v) for v in part.split(","))
        except ValueError:
            raise InputError(f"--points: item {i + 1} {part.strip()!r} is not 'x,y' "
                             f"(expected e.g. \"120,80;400,300\")") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InputError(f"--points: item {i + 1} {part.strip()!r} is not finite")
        pts.append((x, y))
    if not pts:
        raise InputError("--points: no points given (expected e.g. \"120,80;400,300\")")
    return np.asarray(pts, np.float64)


def _floats(values: Iterable[str], where: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except ValueError:
        raise InputError(f"{where}: not numbers") from None
    if not all(np.isfinite(out)):
        raise InputError(f"{where}: NaN or infinity")
    return out


def yolo_boxes(text: str, size: tuple[int, int], where: str) -> tuple[np.ndarray, list[int]]:
    """YOLO detection labels (`class cx cy w h [conf]`, normalised) -> XYXY px boxes, classes."""
    h, w = size
    boxes, classes = [], []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (5, 6):
            raise InputError(f"{where}:{n}: expected 'class cx cy w h' (normalised), got {line!r}")
        cls, cx, cy, bw, bh = _floats(parts[:5], f"{where}:{n}")
        if cls != int(cls) or cls < 0 or bw < 0 or bh < 0:
            raise InputError(f"{where}:{n}: class must be an integer >= 0 and w, h >= 0: {line!r}")
        boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        classes.append(int(cls))
    return np.asarray(boxes, np.float64).reshape(-1, 4), classes


def load_box_source(path: Path) -> Callable[[Path, tuple[int, int]], tuple[np.ndarray, list[int]]]:
    """A function image path, (h, w) -> (boxes XYXY px, category ids) for --boxes FILE:
    a COCO JSON file (images matched by file name), a folder of YOLO `<stem>.txt` files, or one
    YOLO .txt file (used for every image)."""
    if path.is_dir():
        def from_folder(image: Path, size):
            label = path / f"{image.stem}.txt"
            if not label.is_file():
                return np.zeros((0, 4)), []
            return yolo_boxes(label.read_text(), size, str(label))
        return from_folder
    if not path.is_file():
        raise InputError(f"--boxes: {path} is neither a file nor a folder")
    if path.suffix.lower() == ".txt":
        text = path.read_text()
        return lambda image, size: yolo_boxes(text, size, str(path))
    try:
        coco = json.loads(path.read_text())
        names = {im["id"]: Path(im["file_name"]).name for im in coco["images"]}
        by_name: dict[str, tuple[list, list]] = {n: ([], []) for n in names.values()}
        for a in coco.get("annotations", []):
            x, y, bw, bh = _floats(a["bbox"], f"{path}: annotation {a.get('id')}")
            by_name[names[a["image_id"]]][0].append([x, y, x + bw, y + bh])
            by_name[names[a["image_id"]]][1].append(int(a.get("category_id", 1)))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"--boxes: {path} is not COCO JSON with images[] and annotations[].bbox "
                         f"(or YOLO .txt labels): {type(e).__name__}: {e}") from None

    def from_coco(image: Path, size):
        b, c = by_name.get(image.name, ([], []))
        return np.asarray(b, np.float64).reshape(-1, 4), c
    return from_coco


def list_images(inputs: Iterable[str]) -> list[Path]:
    """Files as given, and the image files (by suffix) of folders, sorted; missing paths too
    (they are reported as bad inputs when processed)."""
    out = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def read_image(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB, or InputError naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise InputError(f"cannot read image {path}: not an image file (or damaged)") from None
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e}") from None
    except Exception as e:  # PIL raises assorted errors on damaged files
        raise InputError(f"cannot decode image {path}: {type(e).__name__}: {e}") from None


# -- segmentation ----------------------------------------------------------------------------
def _records(masks: np.ndarray, scores: np.ndarray, categories: list) -> list[dict]:
    boxes = amg.box_xyxy_to_xywh(amg.batched_mask_to_box(masks))
    return [{"segmentation": m, "area": int(m.sum()), "bbox": b.tolist(),
             "predicted_iou": float(s), "category_id": c}
            for m, s, b, c in zip(masks, scores, boxes, categories)]


def segment_image(predictor, image: np.ndarray, path: Path,
                  prompts: Prompts) -> tuple[list[dict], np.ndarray | None]:
    """Mask records (segmentation HxW bool, area, bbox XYWH, predicted_iou, category_id: the
    box's class, None for everything/points) and the prompt boxes (XYXY px) if any."""
    if prompts.mode == "everything":
        return [{**r, "category_id": None} for r in prompts.generator.generate(image)], None
    predictor.set_image(image)
    out: list[dict] = []
    boxes = None
    if prompts.mode == "points":
        pts = prompts.points
        for s in range(0, len(pts), CHUNK):
            p = pts[s:s + CHUNK]
            masks, scores, _ = predictor.predict_batch(
                point_coords=p[:, None, :], point_labels=np.ones((len(p), 1)), multimask_output=True)
            best = scores.argmax(axis=1)
            rows = np.arange(len(p))
            out += _records(masks[rows, best], scores[rows, best], [None] * len(p))
    else:
        boxes, cats = prompts.boxes(path, image.shape[:2])
        for s in range(0, len(boxes), CHUNK):
            masks, scores, _ = predictor.predict_batch(boxes=boxes[s:s + CHUNK], multimask_output=False)
            out += _records(masks[:, 0], scores[:, 0], cats[s:s + CHUNK])
    return out, boxes


# -- outputs ---------------------------------------------------------------------------------
def palette(n: int) -> np.ndarray:
    """n distinct, saturated colours (golden-angle hues), uint8 [n, 3]."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    k = (np.array([5.0, 3.0, 1.0])[None] + hues[:, None] * 6) % 6
    rgb = 1 - 0.85 * np.clip(np.minimum(k, 4 - k), 0, 1)  # HSV with V=1, S=0.85
    return (rgb * 255).astype(np.uint8)


def overlay(image: np.ndarray, records: list[dict], prompts: Prompts, boxes: np.ndarray | None,
            alpha: float = 0.5) -> Image.Image:
    """The photo with each mask filled in its colour (largest first) and outlined."""
    out = image.astype(np.float32)
    order = sorted(range(len(records)), key=lambda i: -records[i]["area"])
    colours = palette(len(records)).astype(np.float32)
    for i in order:
        m = records[i]["segmentation"]
        out[m] = (1 - alpha) * out[m] + alpha * colours[i]
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        out[edge] = colours[i]
    pic = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pic)
    if prompts.mode == "points":
        for x, y in prompts.points:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(255, 255, 255), outline=(0, 0, 0), width=2)
    if boxes is not None:
        for x1, y1, x2, y2 in boxes:
            draw.rectangle([x1, y1, x2, y2], outline=(255, 255, 255), width=2)
    return pic


def coco_json(records: list[dict], file_name: str, size: tuple[int, int]) -> dict:
    h, w = size
    anns = []
    rles = amg.mask_to_rle(np.stack([r["segmentation"] for r in records])) if records else []
    for i, (r, rle) in enumerate(zip(records, rles), 1):
        anns.append({"id": i, "image_id": 1, "category_id": _coco_category(r),
                     "segmentation": amg.coco_encode_rle(rle), "area": r["area"], "bbox": r["bbox"],
                     "iscrowd": 0, "score": r["predicted_iou"],
                     **({"stability_score": r["stability_score"],
                         "point_coords": r["point_coords"]} if "stability_score" in r else {})})
    cats = sorted({_coco_category(r) for r in records})
    return {"images": [{"id": 1, "file_name": file_name, "height": h, "width": w}],
            "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}


def _coco_category(record: dict) -> int:
    return 1 if record["category_id"] is None else record["category_id"]  # 1: "object"


def yolo_polygons(records: list[dict], size: tuple[int, int]) -> str:
    """YOLO segmentation lines `class x1 y1 x2 y2 ...` (normalised), the largest outer contour
    of each mask (masks without one are left out); everything/points masks get class 0."""
    h, w = size
    lines = []
    for r in records:
        polys = amg.mask_to_polygons(r["segmentation"])
        if not polys:
            continue
        poly = max(polys, key=lambda p: len(p))
        cls = 0 if r["category_id"] is None else r["category_id"]
        xy = (poly / np.array([w, h])).clip(0, 1).ravel()
        lines.append(" ".join([str(cls)] + [f"{v:.6f}" for v in xy]))
    return "\n".join(lines) + ("\n" if lines else "")


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _png(pic: Image.Image) -> bytes:
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return buf.getvalue()


def run(predictor, images: list[Path], out: Path, prompts: Prompts, labels: str = "coco",
        progress: bool = True) -> tuple[int, list[tuple[Path, str]]]:
    """Segment each image and write OUT/<stem>.overlay.png and OUT/<stem>.json (COCO) or
    OUT/<stem>.txt (YOLO). Returns (images written, [(bad file, reason)])."""
    from tqdm import tqdm

    if labels not in LABEL_FORMATS:
        raise ValueError(f"labels must be one of {', '.join(LABEL_FORMATS)}, got {labels!r}")
    amg.require("cv2" if labels == "yolo" else "pycocotools.mask", f"--labels {labels}")
    out.mkdir(parents=True, exist_ok=True)
    used: dict[str, int] = {}
    done, bad = 0, []
    bar = tqdm(images, desc="segment", unit="image", disable=not progress, file=sys.stderr)
    for path in bar:
        stem = path.stem
        used[stem] = used.get(stem, 0) + 1
        if used[stem] > 1:  # same name from two folders: keep both
            stem = f"{stem}-{used[stem]}"
        try:
            image = read_image(path)
            records, boxes = segment_image(predictor, image, path, prompts)
            if labels == "coco":
                label_name = f"{stem}.json"
                text = json.dumps(coco_json(records, path.name, image.shape[:2]))
            else:
                label_name = f"{stem}.txt"
                text = yolo_polygons(records, image.shape[:2])
            write_atomic(out / label_name, text.encode())
            write_atomic(out / f"{stem}.overlay.png", _png(overlay(image, records, prompts, boxes)))
            done += 1
            bar.set_postfix(masks=len(records))
        except (InputError, ValueError, TypeError) as e:
            bad.append((path, str(e)))
            tqdm.write(f"skipped {path}: {e}", file=sys.stderr)
    return done, bad
