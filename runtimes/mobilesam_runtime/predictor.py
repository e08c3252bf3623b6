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
# The split decoder's per-prompt cost grows with the rank of the image-token update, 8 heads x
# (tokens + 5): counted on the graphs (torch FlopCounter), 2.41 GFLOP with 2 tokens and 3.27 with
# 6, against 3.66 for the whole decoder at any count, level at ~8 tokens. Measured in onnxruntime
# (2-core AVX-512 host, 2026-12-08, interleaved, busy host): whole / split 1.3x at 2-4 tokens,
# 1.1x at 6-11, 0.9x at 16. So prompts of more tokens than this run the whole decoder.
SPLIT_MAX_TOKENS = 8


class NoImageError(RuntimeError, ValueError):
    """predict()/get_image_embedding() called before set_image()."""


class Backend(Protocol):
    """What a format's runtime provides: the two graphs of the contract."""

    max_points: int | None  # fixed prompt slots (static-shape formats) or None for dynamic
    max_batch: int | None  # prompt sets one decode() call takes (None: any)

    def encode(self, image: np.ndarray) -> np.ndarray:
        """[1,3,1024,1024] float32 -> image_embeddings [1,256,64,64] float32."""

    def decode(self, image_embeddings: np.ndarray, point_coords: np.ndarray,
               point_labels: np.ndarray, mask_input: np.ndarray,
               has_mask_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Contract decoder inputs (B prompt sets) -> (iou_predictions [B,4],
        low_res_masks [B,4,256,256])."""

    # Optional (ONNX, OpenVINO): the split decoder, when `split_decoder` is True:
    # decoder_state(image_embeddings) -> state (once per image) and
    # decode_prompts(state, point_coords, point_labels) -> decode()'s outputs without mask input.


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
        _check_labels(lab)
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
        coords, labels = _fill_slots(coords, labels, max_points,
                                     f"point_coords and box give {coords.shape[0]} prompt tokens")
    return coords[None], labels[None], mask, has_mask


def _fill_slots(coords: np.ndarray, labels: np.ndarray, max_points: int,
                what: str) -> tuple[np.ndarray, np.ndarray]:
    """Pad the token axis (the last of `labels`) to a fixed-slot graph's `max_points` with
    Label.UNUSED; a ValueError starting with `what` when there are more tokens than slots."""
    n = labels.shape[-1]
    if n > max_points:
        raise ValueError(f"{what} (points + padding/box corners), which exceed this bundle's "
                         f"{max_points} fixed slots")
    lead = labels.shape[:-1]
    coords = np.concatenate([coords, np.zeros((*lead, max_points - n, 2), np.float32)], -2)
    labels = np.concatenate([labels, np.full((*lead, max_points - n), contract.Label.UNUSED,
                                             np.float32)], -1)
    return coords, labels


def _check_labels(lab: np.ndarray) -> None:
    bad = sorted(set(lab.ravel().tolist()) - set(contract.Label.ALL))
    if bad:
        raise ValueError(f"point_labels must be 1 (foreground) or 0 (background) "
                         f"(SAM also knows -1, 2, 3); got {bad}")


def batch_prompts(point_coords, point_labels, boxes, mask_input, original_size: tuple[int, int],
                  max_points: int | None = None) -> tuple[np.ndarray, ...]:
    """segment-anything's `predict_torch` prompts in original-image pixels — point_coords
    [B,N,2] with point_labels [B,N], boxes [B,4] (both together allowed), mask_input
    [B,1,256,256] — as the decoder's B-row inputs (the tokens of `prompt_tokens`, per row)."""
    if point_coords is None and point_labels is not None:
        raise ValueError("point_labels given without point_coords")
    if point_coords is not None and point_labels is None:
        raise ValueError("point_labels must be supplied if point_coords is supplied")
    coords, labels, b = [], [], None
    if point_coords is not None:
        pts = _float_array(point_coords, "point_coords", "a BxNx2 array of (x, y)")
        if pts.ndim != 3 or pts.shape[2] != 2 or 0 in pts.shape:
            raise ValueError(f"point_coords must be a BxNx2 array with B, N >= 1, got shape "
                             f"{pts.shape}")
        lab = _float_array(point_labels, "point_labels", "a BxN array")
        if lab.shape != pts.shape[:2]:
            raise ValueError(f"point_labels must have shape {pts.shape[:2]} to match "
                             f"point_coords, got {lab.shape}")
        _check_labels(lab)
        b = pts.shape[0]
        coords.append(_to_frame(pts, "point_coords", original_size))
        labels.append(lab)
        if boxes is None:
            coords.append(np.zeros((b, 1, 2), np.float32))
            labels.append(np.full((b, 1), contract.Label.PADDING))
    if boxes is not None:
        bx = _float_array(boxes, "boxes", "a Bx4 array of (x1, y1, x2, y2)")
        if bx.ndim != 2 or bx.shape[1] != 4 or bx.shape[0] == 0:
            raise ValueError(f"boxes must be a Bx4 array (x1, y1, x2, y2) with B >= 1, got "
                             f"shape {bx.shape}")
        if b is not None and bx.shape[0] != b:
            raise ValueError(f"boxes has {bx.shape[0]} rows but point_coords {b}: one box per "
                             f"prompt set")
        b = bx.shape[0]
        coords.append(_to_frame(bx.reshape(b, 2, 2), "boxes", original_size))
        labels.append(np.tile([contract.Label.BOX_TOP_LEFT, contract.Label.BOX_BOTTOM_RIGHT], (b, 1)))
    if b is None:
        raise ValueError("predict_batch needs point_coords or boxes (a mask_input alone is not "
                         "supported by the exported decoder)")
    low = contract.LOW_RES_SIZE
    if mask_input is not None:
        m = _float_array(mask_input, "mask_input", f"a Bx1x{low}x{low} array of low-res logits",
                         MAX_ABS_MASK_LOGIT)
        if m.shape != (b, 1, low, low):
            raise ValueError(f"mask_input must be {b}x1x{low}x{low} (previous low_res_logits, one "
                             f"per prompt set), got shape {m.shape}")
        mask, has_mask = m.astype(np.float32), np.ones((b,), np.float32)
    else:
        mask, has_mask = np.zeros((b, 1, low, low), np.float32), np.zeros((b,), np.float32)
    coords, labels = np.concatenate(coords, 1), np.concatenate(labels, 1)
    if max_points is not None:
        coords, labels = _fill_slots(coords, labels, max_points, f"point_coords and boxes give "
                                     f"{coords.shape[1]} prompt tokens per set")
    return coords.astype(np.float32), labels.astype(np.float32), mask, has_mask


@dataclass(frozen=True)
class _ImageState:
    """Everything predict() needs about the current image (replaced whole, never mutated)."""

    features: np.ndarray
    decoder_state: tuple[np.ndarray, ...] | None  # the split decoder's (None: not used)
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
        self._local.state = replace(self._state, features=value,
                                    decoder_state=self._decoder_state(value))

    def _decoder_state(self, features: np.ndarray) -> tuple[np.ndarray, ...] | None:
        """The split decoder's per-image state of `features`, if the backend has that decoder."""
        if not getattr(self.backend, "split_decoder", False):
            return None
        return self._call(self.backend.decoder_state, features)

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
        decoder_state = self._decoder_state(features)
        t3 = time.perf_counter()
        input_size = (int(resized.shape[0]), int(resized.shape[1]))
        rows, cols = transforms.upscale_plans(input_size, (h, w))
        self._local.state = _ImageState(features, decoder_state, (h, w), input_size, rows, cols)
        self.timings.update(preprocess=t1 - t0, encoder=t2 - t1, decoder_state=t3 - t2,
                            upscale_setup=time.perf_counter() - t3)

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
        state = self._current(multimask_output=multimask_output, return_logits=return_logits)
        coords, labels, mask, has_mask = decoder_prompts(
            point_coords, point_labels, box, mask_input, state.original_size,
            getattr(self.backend, "max_points", None))
        t0 = time.perf_counter()
        iou, low_res = self._decode(state, coords, labels, mask, has_mask)
        t1 = time.perf_counter()
        sl = slice(1, None) if multimask_output else slice(0, 1)
        low_res = np.asarray(low_res, np.float32)[0, sl]
        scores = np.asarray(iou, np.float32)[0, sl]
        masks = self._upscale(state, low_res)
        if not return_logits:
            masks = masks > contract.MASK_THRESHOLD
        self.timings.update(decoder=t1 - t0, postprocess=time.perf_counter() - t1)
        return masks, scores, low_res

    def _decode(self, state: _ImageState, coords, labels, mask, has_mask):
        """The decoder on prompt rows: the split decoder when every row is without a mask
        input and has at most SPLIT_MAX_TOKENS tokens (and the backend has it), else the whole
        decoder graph."""
        if state.decoder_state is not None and not np.any(has_mask) \
                and labels.shape[-1] <= SPLIT_MAX_TOKENS:
            return self._call(self.backend.decode_prompts, state.decoder_state, coords, labels)
        return self._call(self.backend.decode, state.features, coords, labels, mask, has_mask)

    def _current(self, **flags) -> _ImageState:
        """This thread's image state (one snapshot: a concurrent set_image cannot tear it),
        after checking the bool `flags`."""
        state = self._state
        if state is None:
            raise NoImageError("An image must be set with .set_image(...) before mask prediction "
                               "(in this thread: each thread sets its own).")
        for name, value in flags.items():
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        return state

    @staticmethod
    def _upscale(state: _ImageState, low_res: np.ndarray) -> np.ndarray:
        return transforms.upscale_masks(low_res, state.rows, state.cols)

    def upscale_logits(self, low_res: np.ndarray) -> np.ndarray:
        """[..., 256, 256] low-res logits -> [..., H, W] float32 logits at this thread's image's
        original size (SAM's postprocess_masks)."""
        state = self._current()
        low = np.asarray(low_res, np.float32)
        if low.ndim < 2 or low.shape[-2:] != (contract.LOW_RES_SIZE,) * 2:
            raise ValueError(f"low_res must be [..., {contract.LOW_RES_SIZE}, "
                             f"{contract.LOW_RES_SIZE}], got shape {low.shape}")
        return self._upscale(state, low)

    # -- many prompts per call ------------------------------------------------------------------
    def predict_batch_low_res(self, point_coords=None, point_labels=None, boxes=None,
                              mask_input=None, multimask_output: bool = True,
                              chunk_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """`predict_batch` without the upscaling: (scores [B,C], low_res_logits [B,C,256,256])."""
        state = self._current(multimask_output=multimask_output)
        return self._decode_batch(state, point_coords, point_labels, boxes, mask_input,
                                  multimask_output, chunk_size)

    def _decode_batch(self, state, point_coords, point_labels, boxes, mask_input,
                      multimask_output: bool, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
                or chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        rows = batch_prompts(point_coords, point_labels, boxes, mask_input, state.original_size,
                             getattr(self.backend, "max_points", None))
        step = min(int(chunk_size), getattr(self.backend, "max_batch", None) or chunk_size)
        sl = slice(1, None) if multimask_output else slice(0, 1)
        scores, low_res = [], []
        t0 = time.perf_counter()
        for start in range(0, rows[0].shape[0], step):
            iou, low = self._decode(state, *(r[start:start + step] for r in rows))
            scores.append(np.asarray(iou, np.float32)[:, sl])
            low_res.append(np.asarray(low, np.float32)[:, sl])
        self.timings.update(decoder=time.perf_counter() - t0)
        return np.concatenate(scores), np.concatenate(low_res)

    def predict_batch(self, point_coords=None, point_labels=None, boxes=None, mask_input=None,
                      multimask_output: bool = True, return_logits: bool = False,
                      chunk_size: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Many prompt sets in one call, segment-anything's `predict_torch` semantics but with
        coordinates in original-image pixels: point_coords [B,N,2] + point_labels [B,N] and/or
        boxes [B,4], optional mask_input [B,1,256,256]. Returns (masks [B,C,H,W] bool — or
        float logits with return_logits —, scores [B,C], low_res_logits [B,C,256,256]).
        The decoder runs `chunk_size` prompt sets per call (bounded memory)."""
        state = self._current(multimask_output=multimask_output, return_logits=return_logits)
        scores, low_res = self._decode_batch(state, point_coords, point_labels, boxes, mask_input,
                                             multimask_output, chunk_size)
        t1 = time.perf_counter()
        h, w = state.original_size
        masks = np.empty(low_res.shape[:2] + (h, w), np.float32 if return_logits else bool)
        # one prompt set (C masks) at a time: its float temporary stays small (26 MB at
        # 1800x1200) where 16 at a time was 415 MB; measured 42 -> 20-29 ms per box (64 boxes)
        for j in range(low_res.shape[0]):
            up = self._upscale(state, low_res[j])
            if return_logits:
                masks[j] = up
            else:
                np.greater(up, contract.MASK_THRESHOLD, out=masks[j])
        self.timings.update(postprocess=time.perf_counter() - t1)
        return masks, scores, low_res
