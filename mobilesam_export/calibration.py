"""Real images and realistic prompts for calibration and parity (no synthetic data)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobilesam_runtime import sample_images


def load_images(folder: str | Path | None = None, split: str = "evaluation",
                limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, HxWx3 uint8 RGB) for every image in `folder`, sorted; by default the packaged
    photos of `split` ("calibration" for quantization, "evaluation" for parity: disjoint sets)."""
    if folder is None:
        return sample_images.load(split)[:limit]
    try:
        return sample_images.load_folder(folder, limit)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{split} images: {e}") from e


@dataclass(frozen=True)
class Prompt:
    """A prompt in fractions of the image's width/height, so it fits any photo."""

    name: str
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    multimask: bool = True
    refine_from: str | None = None  # use this prompt's best low-res logits as mask_input
    extra: dict = field(default_factory=dict, compare=False)

    def absolute(self, h: int, w: int) -> dict:
        """predict() keyword arguments (without mask_input) for an h x w image."""
        kw: dict = {"multimask_output": self.multimask}
        if self.points:
            kw["point_coords"] = np.array([[x * w, y * h] for x, y in self.points], np.float32)
            kw["point_labels"] = np.array(self.labels, np.int64)
        if self.box:
            x0, y0, x1, y1 = self.box
            kw["box"] = np.array([x0 * w, y0 * h, x1 * w, y1 * h], np.float32)
        return kw


# SAM's notebook prompts on truck.jpg (1800x1200) expressed as fractions, plus the other types.
PROMPTS = (
    Prompt("1 point", ((0.278, 0.3125),), (1,)),
    Prompt("1 point, single", ((0.278, 0.3125),), (1,), multimask=False),
    Prompt("2 points + negative", ((0.278, 0.3125), (0.625, 0.521), (0.45, 0.8)), (1, 1, 0),
           multimask=False),
    Prompt("box", box=(0.236, 0.5, 0.389, 0.729), multimask=False),
    Prompt("box + negative point", ((0.319, 0.625),), (0,), box=(0.236, 0.5, 0.389, 0.729),
           multimask=False),
    Prompt("refine with mask_input", ((0.278, 0.3125), (0.35, 0.4)), (1, 1), multimask=False,
           refine_from="1 point"),
    Prompt("5 points, multimask", ((0.2, 0.3), (0.4, 0.35), (0.5, 0.6), (0.7, 0.2), (0.3, 0.7)),
           (1, 1, 0, 1, 0)),
)


def calibration_feeds(loaded, images_dir: str | Path | None) -> tuple[list[dict], list[dict]]:
    """Encoder feeds from real photos (the packaged calibration set unless `images_dir`, never
    the evaluation photos parity scores on); decoder feeds from their real embeddings x the parity
    prompt types (points, boxes, refinement with the reference's previous low-res mask)."""
    from tqdm import tqdm

    from mobilesam_runtime import transforms
    from mobilesam_runtime.predictor import decoder_prompts

    from .reference import TorchPredictor

    ref = TorchPredictor(loaded.model)
    enc, dec = [], []
    for _, image in tqdm(load_images(images_dir, "calibration"), desc="calibration", unit="image"):
        enc.append({"image": transforms.normalize_and_pad(transforms.resize_image(image))})
        ref.set_image(image)
        emb = ref.get_image_embedding()
        for _, kw, _ in prompt_cases(image, ref):
            coords, labels, mask, has = decoder_prompts(
                kw.get("point_coords"), kw.get("point_labels"), kw.get("box"),
                kw.get("mask_input"), image.shape[:2])
            dec.append({"image_embeddings": emb, "point_coords": coords, "point_labels": labels,
                        "mask_input": mask, "has_mask_input": has})
    return enc, dec


def prompt_cases(image: np.ndarray, ref) -> Iterator[tuple[Prompt, dict, tuple]]:
    """(prompt, predict() kwargs, reference output with logits) for every prompt type on an image
    already set in the reference `ref`; refinement prompts get the reference's best low-res mask
    of the prompt they refine."""
    previous: dict[str, tuple] = {}
    for p in PROMPTS:
        kw = p.absolute(*image.shape[:2])
        if p.refine_from:
            _, scores, low = previous[p.refine_from]
            kw["mask_input"] = low[int(np.argmax(scores))][None]
        out = ref.predict(**kw, return_logits=True)
        previous[p.name] = out
        yield p, kw, out


def batch_cases(image: np.ndarray) -> Iterator[tuple[str, dict]]:
    """(name, predict_batch() kwargs) of many prompt sets at once, deterministic per image size:
    20 boxes on a grid, multimask (one full TFLite batch of 16 + single calls), and 10 sets of
    2 points + a box, single mask (a padded batch), refined: kwargs with `"refine": True` get
    their mask_input from the caller (the previous case's best low-res masks, row by row)."""
    h, w = image.shape[:2]
    gx, gy = np.meshgrid(np.linspace(0.05, 0.65, 5), np.linspace(0.05, 0.55, 4))
    x0, y0 = gx.ravel() * w, gy.ravel() * h
    boxes = np.stack([x0, y0, x0 + 0.3 * w, y0 + 0.4 * h], 1).astype(np.float32)
    yield "batch: 20 boxes", {"boxes": boxes, "multimask_output": True}
    pts = np.stack([boxes[:10, :2] + [0.1 * w, 0.1 * h], boxes[:10, 2:] - [0.05 * w, 0.05 * h]], 1)
    yield "batch: 10 x (2 points + box)", {
        "point_coords": pts.astype(np.float32), "point_labels": np.tile([1, 0], (10, 1)),
        "boxes": boxes[10:], "multimask_output": False, "refine": True}
