"""The real photos shipped inside the package (see data/README.md): a calibration set and a
disjoint evaluation set, read with importlib.resources so they work from any install."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("calibration", "evaluation")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _folder(split: str):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return resources.files(__package__) / "data" / split


def names(split: str) -> list[str]:
    """File names of a split, sorted."""
    return sorted(p.name for p in _folder(split).iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES))


def load(split: str) -> list[tuple[str, np.ndarray]]:
    """(file name, HxWx3 uint8 RGB) for every packaged photo of `split`."""
    folder = _folder(split)
    return [(n, _rgb((folder / n).read_bytes())) for n in names(split)]


def load_folder(folder: str | Path, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(file name, HxWx3 uint8 RGB) for every image file in a user's folder, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return [(p.name, _rgb(p.read_bytes())) for p in paths[:limit]]


def default_benchmark_image() -> np.ndarray:
    """SAM's notebook photo (truck.jpg, 1800x1200), the benchmark's default input."""
    return _rgb((_folder("evaluation") / "truck.jpg").read_bytes())


def _rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))
