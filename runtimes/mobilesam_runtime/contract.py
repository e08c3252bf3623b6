"""The I/O contract of MobileSAM's two graphs, defined once.

Exporters, runtimes, the parity checker and the benchmarks all read this module; nothing else
spells out a tensor name, shape, label value or normalisation constant.  It is plain Python
(no numpy) so that it can be embedded anywhere and serialised into every bundle's manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CONTRACT_VERSION = 1

IMAGE_SIZE = 1024  # longest side after resize; the encoder input is IMAGE_SIZE x IMAGE_SIZE
EMBED_DIM = 256
EMBED_SIZE = 64  # image_embeddings spatial size (IMAGE_SIZE / 16)
LOW_RES_SIZE = 256  # low-res mask logits (4 * EMBED_SIZE)
NUM_MASK_OUTPUTS = 4  # index 0: single-mask output; 1..3: the multimask set
PIXEL_MEAN = (123.675, 116.28, 103.53)  # RGB, on 0..255 pixels
PIXEL_STD = (58.395, 57.12, 57.375)
MASK_THRESHOLD = 0.0  # logits > threshold are foreground
COLOR_ORDER = "RGB"
RESIZE = "PIL bilinear resize of the longest side to 1024 (new size = int(side * scale + 0.5))"
PADDING = "zero-pad bottom/right after normalisation (i.e. padded pixels equal the mean colour)"
COORDINATE_FRAME = "pixels (x, y) of the resized image (longest side 1024), before the +0.5 centre shift"


class Label:
    """Values of `point_labels` (SAM's convention)."""

    PADDING = -1  # 'not a point': SAM adds one when there is no box
    BACKGROUND = 0
    FOREGROUND = 1
    BOX_TOP_LEFT = 2
    BOX_BOTTOM_RIGHT = 3
    UNUSED = -10  # fixed-slot graphs only (TFLite): an empty slot, masked out of attention
    ALL = (-1, 0, 1, 2, 3)
    USER = (0, 1)  # values a user may pass to predict(); boxes go through `box`


@dataclass(frozen=True)
class TensorSpec:
    """One named graph input or output. A str in `shape` is a dynamic dimension."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    description: str


ENCODER_INPUTS = (
    TensorSpec(
        "image",
        (1, 3, IMAGE_SIZE, IMAGE_SIZE),
        "float32",
        "RGB image, longest side resized to 1024, normalised with PIXEL_MEAN/PIXEL_STD, "
        "zero-padded bottom/right to 1024x1024",
    ),
)
ENCODER_OUTPUTS = (
    TensorSpec("image_embeddings", (1, EMBED_DIM, EMBED_SIZE, EMBED_SIZE), "float32",
               "image embedding fed to the decoder"),
)
DECODER_INPUTS = (
    TensorSpec("image_embeddings", (1, EMBED_DIM, EMBED_SIZE, EMBED_SIZE), "float32",
               "output of the encoder"),
    TensorSpec("point_coords", (1, "num_points", 2), "float32",
               "prompt points (x, y) in the resized 1024 frame; box corners as two points"),
    TensorSpec("point_labels", (1, "num_points"), "float32",
               "1 foreground, 0 background, 2/3 box top-left/bottom-right, -1 padding"),
    TensorSpec("mask_input", (1, 1, LOW_RES_SIZE, LOW_RES_SIZE), "float32",
               "previous low-res mask logits (zeros when unused)"),
    TensorSpec("has_mask_input", (1,), "float32", "1 when mask_input is used, else 0"),
)
DECODER_OUTPUTS = (
    TensorSpec("iou_predictions", (1, NUM_MASK_OUTPUTS), "float32",
               "predicted mask quality; index 0 single-mask, 1..3 multimask"),
    TensorSpec("low_res_masks", (1, NUM_MASK_OUTPUTS, LOW_RES_SIZE, LOW_RES_SIZE), "float32",
               "mask logits in the padded 256x256 frame"),
)
# The interface of segment-anything's official ONNX decoder (scripts/export_onnx_model.py with
# return_single_mask=True), so SAM ONNX clients load our decoder unchanged.
OFFICIAL_DECODER_INPUTS = DECODER_INPUTS + (
    TensorSpec("orig_im_size", (2,), "float32", "original image (height, width)"),
)
OFFICIAL_DECODER_OUTPUTS = (
    TensorSpec("masks", (1, 1, "orig_height", "orig_width"), "float32",
               "best mask logits upscaled to the original image size"),
    TensorSpec("iou_predictions", (1, 1), "float32", "its predicted quality"),
    TensorSpec("low_res_masks", (1, 1, LOW_RES_SIZE, LOW_RES_SIZE), "float32",
               "its low-res logits"),
)


def describe(official_decoder: bool = False) -> dict:
    """The contract as a JSON-ready dict (written into every manifest and model's metadata)."""
    dec_in = OFFICIAL_DECODER_INPUTS if official_decoder else DECODER_INPUTS
    dec_out = OFFICIAL_DECODER_OUTPUTS if official_decoder else DECODER_OUTPUTS
    return {
        "contract_version": CONTRACT_VERSION,
        "decoder_interface": "sam-official-onnx" if official_decoder else "mobilesam-export",
        "image_size": IMAGE_SIZE,
        "pixel_mean": list(PIXEL_MEAN),
        "pixel_std": list(PIXEL_STD),
        "color_order": COLOR_ORDER,
        "resize": RESIZE,
        "padding": PADDING,
        "coordinate_frame": COORDINATE_FRAME,
        "mask_threshold": MASK_THRESHOLD,
        "labels": {"padding": Label.PADDING, "background": Label.BACKGROUND,
                   "foreground": Label.FOREGROUND, "box_top_left": Label.BOX_TOP_LEFT,
                   "box_bottom_right": Label.BOX_BOTTOM_RIGHT},
        "encoder": {"inputs": [_spec(s) for s in ENCODER_INPUTS],
                    "outputs": [_spec(s) for s in ENCODER_OUTPUTS]},
        "decoder": {"inputs": [_spec(s) for s in dec_in], "outputs": [_spec(s) for s in dec_out]},
    }


def _spec(s: TensorSpec) -> dict:
    d = asdict(s)
    d["shape"] = list(s.shape)
    return d
