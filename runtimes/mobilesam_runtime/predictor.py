"""A drop-in for segment-anything's `SamPredictor` over any exported bundle (no torch).

Thread safety: one predictor may be shared by several threads. The image set with `set_image()`
belongs to the calling thread (each thread has its own current image, embedding and timings),
so `set_image(a)` in one thread never changes what `predict()` segments in another; the backend
(the loaded graphs) is shared, and calls into it are serialised unless the backend says it is
thread-safe (ONNX Runtime is). A thread that never called `set_image()` has no image.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from . import contract, transforms

FLOAT32_MAX = float(np.finfo(np.float32).max)
# Beyond float32 the graphs cannot even take a value; these tighter bounds keep results right.
# Measured (ONNX fp32/fp16, OpenVINO fp16 decoders): scores turn NaN for coordinates from 2.7e38
# (1024 frame), and mask_input logits change the masks from 1e19 (LayerNorm's variance overflows
# float32) while results are stable to 1e-6 below 1e18. Real logits are within +-100.
MAX_ABS_COORD = 1e30  # prompt coordinates in the 1024 frame
MAX_ABS_MASK_LOGIT = 1e15


class NoImageError(RuntimeError, ValueError):
    """predict()/get_image_embedding() called before set_image()."""


class Backend(Protocol):
    """What a format's runtime provides: the two graphs of the contract."""

    max_points: int | None  # fixed prompt slots (static-shape formats) or None for dynamic

    def encode(self, image: np.ndarray) -> np.ndarray:
        """[1,3,1024,1024] float32 -> image_embeddings [1,256,64,64] float32."""

    def decode(self, image_embeddings: np.ndarray, point_coords: np.ndarray,
               point_labels: np.ndarray, mask_input: np.ndarray,
               has_mask_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Contract decoder inputs -> (iou_predictions [1,4], low_res_masks [1,4,256,256])."""


def _float_array(value, name: str, shape_desc: str, limit: float = FLOAT32_MAX) -> np.ndarray:
    """`value` as float64, refusing non-real dtypes (complex, object, str, datetime), NaN/inf
    and magnitudes above `limit` (at most float32's range: the graphs' dtype)."""
    try:
        arr = np.asarray(value)
    except Exception as e:  # ragged lists etc.
        raise ValueError(f"{name} must be {shape_desc}: {e}") from e
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real numbers ({shape_desc}), got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric ({shape_desc}), got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    _check_range(arr, name, limit)
    return arr


def _check_range(arr: np.ndarray, name: str, limit: float, frame: str = "") -> None:
    if arr.size and float(np.abs(arr).max()) > limit:
        raise ValueError(f"{name} has a value of magnitude {float(np.abs(arr).max()):.3g}{frame}, "
                         f"beyond {limit:.3g} (the graphs compute in float32)")


def _to_frame(xy: np.ndarray, name: str, original_size: tuple[int, int]) -> np.ndarray:
    """Original-image pixels -> the 1024 frame, refusing values beyond MAX_ABS_COORD there."""
    with np.errstate(over="ignore"):
        out = transforms.transform_coords(xy, original_size)
    if not np.all(np.abs(out) <= MAX_ABS_COORD):  # also catches float32 overflow (inf)
        raise ValueError(f"{name} has a value of magnitude {float(np.abs(xy).max()):.3g} px, "
                         f"beyond {MAX_ABS_COORD:.0e} in the resized 1024 frame")
    return out


def prompt_tokens(point_coords, point_labels, box,
                  original_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (1024 frame) and labels as SAM orders them: points, a padding point when
    there is no box, then the box's two corners."""
    coords, labels = [], []
    if point_coords is not None:
        pts = _float_array(point_coords, "point_coords", "an Nx2 array of (x, y)")
        if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
            raise ValueError(f"point_coords must be an Nx2 array with N >= 1, got shape {pts.shape}")
        lab = _float_array(point_labels, "point_labels", "a length-N array")
        if lab.shape != (pts.shape[0],):
            raise ValueError(f"point_labels must have shape ({pts.shape[0]},) to match "
                             f"point_coords, got {lab.shape}")
        bad = sorted(set(lab.tolist()) - set(contract.Label.ALL))
        if bad:
            raise ValueError(f"point_labels must be 1 (foreground) or 0 (background) "
                             f"(SAM also knows -1, 2, 3); got {bad}")
        coords.append(_to_frame(pts, "point_coords", original_size))
        labels.append(lab)
        if box is None:
            coords.append(np.zeros((1, 2), np.float32))
            labels.append(np.array([contract.Label.PADDING]))
    if box is not None:
        b = _float_array(box, "box", "a length-4 array (x1, y1, x2, y2)")
        if b.size != 4 or b.ndim > 2 or (b.ndim == 2 and b.shape[0] != 1):
            raise ValueError(f"box must be a length-4 array (x1, y1, x2, y2), got shape {b.shape}")
        coords.append(_to_frame(b.reshape(2, 2), "box", original_size))
        labels.append(np.array([contract.Label.BOX_TOP_LEFT, contract.Label.BOX_BOTTOM_RIGHT]))
    if not coords:
        return np.zeros((0, 2), np.float32), np.zeros((0,), np.float32)
    return (np.concatenate(coords).astype(np.float32),
            np.concatenate(labels).astype(np.float32))


def decoder_prompts(point_coords, point_labels, box, mask_input, original_size: tuple[int, int],
                    max_points: int | None = None) -> tuple[np.ndarray, ...]:
    """Validate SAM-style prompts (original-image pixels) and turn them into the decoder's
    point_coords [1,N,2], point_labels [1,N], mask_input [1,1,256,256], has_mask_input [1].
    With `max_points` (fixed-slot graphs) unused slots are filled with Label.UNUSED."""
    if point_coords is None and point_labels is not None:
        raise ValueError("point_labels given without point_coords")
    if point_coords is not None and point_labels is None:
        raise ValueError("point_labels must be supplied if point_coords is supplied")
    low = contract.LOW_RES_SIZE
    if mask_input is not None:
        m = _float_array(mask_input, "mask_input", f"a 1x{low}x{low} low-res logit map",
                         MAX_ABS_MASK_LOGIT)
        if m.shape not in ((1, low, low), (low, low), (1, 1, low, low)):
            raise ValueError(f"mask_input must be 1x{low}x{low} (a previous low_res_logits "
                             f"entry), got shape {m.shape}")
        mask = m.reshape(1, 1, low, low).astype(np.float32)
        has_mask = np.ones((1,), np.float32)
    else:
        mask = np.zeros((1, 1, low, low), np.float32)
        has_mask = np.zeros((1,), np.float32)
    coords, labels = prompt_tokens(point_coords, point_labels, box, original_size)
    if coords.shape[0] == 0:
        raise ValueError("predict needs at least one point or a box (point_coords or box; a "
                         "mask_input alone is not supported by the exported decoder)")
    if max_points is not None:
        if coords.shape[0] > max_points:
            raise ValueError(f"point_coords and box give {coords.shape[0]} prompt tokens (points + "
                             f"padding/box corners), which exceed this bundle's {max_points} "
                             f"fixed slots")
        extra = max_points - coords.shape[0]
        coords = np.concatenate([coords, np.zeros((extra, 2), np.float32)])
        labels = np.concatenate([labels, np.full((extra,), contract.Label.UNUSED, np.float32)])
    return coords[None], labels[None], mask, has_mask


@dataclass(frozen=True)
class _ImageState:
    """Everything predict() needs about the current image (replaced whole, never mutated)."""

    features: np.ndarray
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    rows: transforms.AxisPlan  # upscaling of the low-res masks (transforms.upscale_plans)
    cols: transforms.AxisPlan


class SamPredictor:
    """set_image() once, predict() per prompt, with segment-anything's semantics; shareable
    across threads (each thread has its own current image, see the module docstring)."""

    def __init__(self, backend: Backend, manifest: dict | None = None) -> None:
        self.backend = backend
        self.manifest = manifest or {}
        self._local = threading.local()
        self._backend_lock = None if getattr(backend, "thread_safe", False) else threading.Lock()

    # -- per-thread state (SamPredictor's attributes, as properties) ------------------------
    @property
    def _state(self) -> _ImageState | None:
        return getattr(self._local, "state", None)

    @property
    def timings(self) -> dict[str, float]:
        """Seconds spent in the last set_image/predict steps of this thread."""
        if not hasattr(self._local, "timings"):
            self._local.timings = {}
        return self._local.timings

    @property
    def is_image_set(self) -> bool:
        return self._state is not None

    @property
    def features(self) -> np.ndarray | None:
        return None if self._state is None else self._state.features

    @features.setter
    def features(self, value: np.ndarray) -> None:
        """Replace this thread's embedding (e.g. with another runtime's, for comparisons)."""
        if self._state is None:
            raise NoImageError("set an image before replacing its features")
        self._local.state = replace(self._state, features=value)

    @property
    def original_size(self) -> tuple[int, int] | None:
        return None if self._state is None else self._state.original_size

    @property
    def input_size(self) -> tuple[int, int] | None:
        return None if self._state is None else self._state.input_size

    @property
    def _rows(self) -> transforms.AxisPlan:
        return self._state.rows

    @property
    def _cols(self) -> transforms.AxisPlan:
        return self._state.cols

    def _call(self, fn, *args):
        if self._backend_lock is None:
            return fn(*args)
        with self._backend_lock:
            return fn(*args)

    # -- image --------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Compute the embedding of an HxWx3 uint8 image (RGB, or BGR with image_format)."""
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image must be a numpy array (HxWx3 uint8), got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise TypeError(f"image must be uint8 with values 0..255, got dtype {image.dtype}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be HxWx3 (3 colour channels), got shape {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image is empty: shape {image.shape}")
        h, w = int(image.shape[0]), int(image.shape[1])
        new_h, new_w = transforms.preprocess_shape(h, w)
        if new_h == 0 or new_w == 0:
            raise ValueError(f"image of {h}x{w} pixels is too thin: resizing its long side to "
                             f"{contract.IMAGE_SIZE} makes the short side 0 pixels (the aspect ratio "
                             f"may be at most {2 * contract.IMAGE_SIZE}:1)")
        if image_format == "BGR":
            image = image[..., ::-1]
        self.reset_image()
        t0 = time.perf_counter()
        resized = transforms.resize_image(np.ascontiguousarray(image))
        x = transforms.normalize_and_pad(resized)
        t1 = time.perf_counter()
        features = self._call(self.backend.encode, x)
        t2 = time.perf_counter()
        input_size = (int(resized.shape[0]), int(resized.shape[1]))
        rows, cols = transforms.upscale_plans(input_size, (h, w))
        self._local.state = _ImageState(features, (h, w), input_size, rows, cols)
        self.timings.update(preprocess=t1 - t0, encoder=t2 - t1,
                            upscale_setup=time.perf_counter() - t2)

    def get_image_embedding(self) -> np.ndarray:
        """The current image's embedding, 1x256x64x64."""
        if not self.is_image_set:
            raise NoImageError("An image must be set with .set_image(...) to get an embedding "
                               "(in this thread: each thread sets its own).")
        return self.features

    def reset_image(self) -> None:
        """Forget this thread's current image."""
        self._local.state = None

    # -- prompts ------------------------------------------------------------------------------
    def predict(self, point_coords: np.ndarray | None = None, point_labels: np.ndarray | None = None,
                box: np.ndarray | None = None, mask_input: np.ndarray | None = None,
                multimask_output: bool = True, return_logits: bool = False,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for the prompts on the current image (coordinates in original-image pixels).

        Returns (masks CxHxW bool — or float logits with return_logits —, scores C,
        low_res_logits Cx256x256); C is 3 with multimask_output, else 1."""
        state = self._state  # one snapshot: a concurrent set_image cannot tear it
        if state is None:
            raise NoImageError("An image must be set with .set_image(...) before mask prediction "
                               "(in this thread: each thread sets its own).")
        if not isinstance(multimask_output, (bool, np.bool_)):
            raise TypeError(f"multimask_output must be a bool, got {type(multimask_output).__name__}")
        if not isinstance(return_logits, (bool, np.bool_)):
            raise TypeError(f"return_logits must be a bool, got {type(return_logits).__name__}")
        coords, labels, mask, has_mask = decoder_prompts(
            point_coords, point_labels, box, mask_input, state.original_size,
            getattr(self.backend, "max_points", None))
        t0 = time.perf_counter()
        iou, low_res = self._call(self.backend.decode, state.features, coords, labels, mask,
                                  has_mask)
        t1 = time.perf_counter()
        sl = slice(1, None) if multimask_output else slice(0, 1)
        low_res = np.asarray(low_res, np.float32)[0, sl]
        scores = np.asarray(iou, np.float32)[0, sl]
        masks = transforms.upscale_masks(low_res, state.rows, state.cols)
        if not return_logits:
            masks = masks > contract.MASK_THRESHOLD
        self.timings.update(decoder=t1 - t0, postprocess=time.perf_counter() - t1)
        return masks, scores, low_res
