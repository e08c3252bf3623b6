"""The I/O contract of MobileSAM's two graphs, defined once.

Exporters, runtimes, the parity checker and the benchmarks all read this module; nothing else
spells out a tensor name, shape, label value or normalisation constant.  It is plain Python
(no numpy) so that it can be embedded anywhere and serialised into every bundle's manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CONTRACT_VERSION = 3
# Version 1 had the same tensors with the prompt batch fixed to 1 (its manifests bind
# `num_prompts` to 1), so this runtime reads those bundles unchanged. Version 2 had no split
# decoder (the optional `decoder_image` / `decoder_prompts` graphs below): same reading.
SUPPORTED_CONTRACT_VERSIONS = (1, 2, 3)

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
# The decoder takes a prompt batch: `num_prompts` (B) prompt sets of `num_points` (N) tokens each,
# against ONE image embedding (broadcast inside the graph, never copied B times by the caller).
DECODER_INPUTS = (
    TensorSpec("image_embeddings", (1, EMBED_DIM, EMBED_SIZE, EMBED_SIZE), "float32",
               "output of the encoder"),
    TensorSpec("point_coords", ("num_prompts", "num_points", 2), "float32",
               "prompt points (x, y) in the resized 1024 frame; box corners as two points"),
    TensorSpec("point_labels", ("num_prompts", "num_points"), "float32",
               "1 foreground, 0 background, 2/3 box top-left/bottom-right, -1 padding"),
    TensorSpec("mask_input", ("num_prompts", 1, LOW_RES_SIZE, LOW_RES_SIZE), "float32",
               "previous low-res mask logits (zeros when unused)"),
    TensorSpec("has_mask_input", ("num_prompts",), "float32", "1 when mask_input is used, else 0"),
)
DECODER_OUTPUTS = (
    TensorSpec("iou_predictions", ("num_prompts", NUM_MASK_OUTPUTS), "float32",
               "predicted mask quality; index 0 single-mask, 1..3 multimask"),
    TensorSpec("low_res_masks", ("num_prompts", NUM_MASK_OUTPUTS, LOW_RES_SIZE, LOW_RES_SIZE),
               "float32", "mask logits in the padded 256x256 frame"),
)


# The split decoder (optional graphs; ONNX and OpenVINO bundles have them): the same decoder cut
# at the image, for prompts WITHOUT a mask input. `decoder_image` runs once per image (at
# set_image) and returns the image-only part of every layer; `decoder_prompts` takes that state
# and the prompts and returns exactly the decoder's outputs with has_mask_input = 0
# (mobilesam_export/modeling/factored.py says why it is exact). Its state tensors, in order:
_TOKENS = EMBED_SIZE * EMBED_SIZE
_ATTN = EMBED_DIM // 2  # the cross-attentions' internal width (downsample rate 2)
_STATE = (
    ("t0_k", _ATTN, "layer 0 token->image attention: keys of the image tokens"),
    ("t0_v", _ATTN, "layer 0 token->image attention: values of the image tokens"),
    ("i0_q", _ATTN, "layer 0 image->token attention: queries of the image tokens"),
    ("f0c", EMBED_DIM, "layer 0 image tokens, centred per token"),
    ("f0n", None, "squared norms of f0c's rows"),
    ("t1_k", _ATTN, "layer 1 token->image keys: the image-only term"),
    ("t1_v", _ATTN, "layer 1 token->image values: the image-only term"),
    ("i1_q", _ATTN, "layer 1 image->token queries: the image-only term"),
    ("f1c", EMBED_DIM, "layer 1 image tokens' image-only term, centred per token"),
    ("f1n", None, "squared norms of f1c's rows"),
    ("tf_k", _ATTN, "final token->image keys: the image-only term"),
    ("tf_v", _ATTN, "final token->image values: the image-only term"),
    ("up_f", 4 * (EMBED_DIM // 4), "the mask upscaling's first transposed conv (2x2 outputs x 64 "
     "channels per token): the image-only term"),
)
DECODER_STATE = tuple(
    TensorSpec(name, (1, _TOKENS) if width is None else (1, _TOKENS, width), "float32", desc)
    for name, width, desc in _STATE)
DECODER_IMAGE_INPUTS = DECODER_INPUTS[:1]
DECODER_PROMPTS_INPUTS = DECODER_STATE + DECODER_INPUTS[1:3]


def _one_prompt(specs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(s.name, tuple(1 if d == "num_prompts" else d for d in s.shape),
                            s.dtype, s.description) for s in specs)


# The interface of segment-anything's official ONNX decoder (scripts/export_onnx_model.py with
# return_single_mask=True), so SAM ONNX clients load our decoder unchanged.
# It has no prompt batch (B = 1).
OFFICIAL_DECODER_INPUTS = _one_prompt(DECODER_INPUTS) + (
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
        "split_decoder": {role: {"inputs": [_spec(s) for s in SIGNATURE_ROLES[role][0]],
                                 "outputs": [_spec(s) for s in SIGNATURE_ROLES[role][1]]}
                          for role in SPLIT_DECODER_ROLES},
    }


def _spec(s: TensorSpec) -> dict:
    d = asdict(s)
    d["shape"] = list(s.shape)
    return d


# -- per-bundle graph signatures ---------------------------------------------------------------
# The contract names a graph's dynamic dimensions (a str in TensorSpec.shape); an exported graph
# binds each one either to a fixed size (TFLite's static prompt slots) or to a `Dim` range (ONNX's
# unbounded N, CoreML's 1..16). The manifest's `signatures` records that per graph, typed, and the
# runtimes read it instead of free-form notes. A fixed size for `num_points` means prompt slots:
# the runtime fills unused ones with Label.UNUSED.
# `decoder_batch` (static-shape formats only) is a second signature of the decoder graph's file
# with a larger fixed prompt batch (TFLite: one file, two signatures sharing the weights).
SIGNATURE_ROLES = {
    "encoder": (ENCODER_INPUTS, ENCODER_OUTPUTS),
    "decoder": (DECODER_INPUTS, DECODER_OUTPUTS),
    "decoder_batch": (DECODER_INPUTS, DECODER_OUTPUTS),
    "decoder_official": (OFFICIAL_DECODER_INPUTS, OFFICIAL_DECODER_OUTPUTS),
    "decoder_image": (DECODER_IMAGE_INPUTS, DECODER_STATE),
    "decoder_prompts": (DECODER_PROMPTS_INPUTS, DECODER_OUTPUTS),
}
SPLIT_DECODER_ROLES = ("decoder_image", "decoder_prompts")  # optional, always both
REQUIRED_ROLES = ("encoder", "decoder")
INPUT_KINDS = ("tensor", "image")  # image: CoreML ImageType, RGB 0..255, normalisation in-graph
IMAGE_KIND_INPUTS = (("encoder", "image"),)  # the only input that may be an image


@dataclass(frozen=True)
class Dim:
    """A variable dimension of an exported graph: any size in min..max (max None: unbounded)."""

    name: str
    min: int = 1
    max: int | None = None

    def allows(self, n: int) -> bool:
        return n >= self.min and (self.max is None or n <= self.max)


@dataclass(frozen=True)
class TensorSignature:
    """One input/output of an exported graph: static ints and `Dim`s; `kind` for inputs."""

    name: str
    shape: tuple[int | Dim, ...]
    kind: str = "tensor"


@dataclass(frozen=True)
class GraphSignature:
    inputs: tuple[TensorSignature, ...]
    outputs: tuple[TensorSignature, ...]

    def input(self, name: str) -> TensorSignature:
        return next(t for t in self.inputs if t.name == name)

    def to_json(self) -> dict:
        def dim(d):
            return d if isinstance(d, int) else {"name": d.name, "min": d.min, "max": d.max}

        def tensor(t: TensorSignature, with_kind: bool) -> dict:
            out = {"name": t.name, "shape": [dim(d) for d in t.shape]}
            return {**out, "kind": t.kind} if with_kind else out

        return {"inputs": [tensor(t, True) for t in self.inputs],
                "outputs": [tensor(t, False) for t in self.outputs]}


def graph_signature(role: str, dims: dict[str, int | Dim] | None = None,
                    kinds: dict[str, str] | None = None) -> GraphSignature:
    """The contract's tensors of graph `role` with its named dynamic dimensions bound as exported
    (`dims`: name -> fixed size or Dim; unnamed ones stay unbounded) and input `kinds`."""
    dims, kinds = dims or {}, kinds or {}
    ins, outs = SIGNATURE_ROLES[role]

    def bind(spec: TensorSpec, kind: str) -> TensorSignature:
        shape = tuple(dims.get(d, Dim(d)) if isinstance(d, str) else d for d in spec.shape)
        return TensorSignature(spec.name, shape, kind)

    return GraphSignature(tuple(bind(s, kinds.get(s.name, "tensor")) for s in ins),
                          tuple(bind(s, "tensor") for s in outs))


def prompt_points(decoder: GraphSignature) -> int | Dim:
    """The decoder's prompt-token dimension: a fixed slot count, or the Dim it accepts."""
    return decoder.input("point_coords").shape[1]


def prompt_batch(decoder: GraphSignature) -> int | Dim:
    """The decoder's prompt-batch dimension (B): a fixed size, or the Dim it accepts."""
    return decoder.input("point_coords").shape[0]


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_dim(raw, want: int | str, where: str) -> int | Dim:
    if isinstance(want, int):
        if not (_is_int(raw) and raw == want):
            raise ValueError(f"{where} must be {want}, got {raw!r}")
        return raw
    if _is_int(raw):
        if raw < 1:
            raise ValueError(f"{where} ({want}) must be >= 1, got {raw}")
        return raw
    if not isinstance(raw, dict):
        raise ValueError(f"{where} ({want}) must be a size or {{name, min, max}}, got {raw!r}")
    lo, hi = raw.get("min"), raw.get("max")
    if raw.get("name") != want:
        raise ValueError(f"{where}: dimension name must be {want!r}, got {raw.get('name')!r}")
    if not (_is_int(lo) and lo >= 1) or not (hi is None or (_is_int(hi) and hi >= lo)):
        raise ValueError(f"{where} ({want}): need integer min >= 1 and max >= min or null, "
                         f"got min={lo!r} max={hi!r}")
    return Dim(want, lo, hi)


def _parse_tensors(raw, specs: tuple[TensorSpec, ...], role: str, io: str) -> tuple:
    where = f"signatures.{role}.{io}"
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw) \
            or [t.get("name") for t in raw] != [s.name for s in specs]:
        raise ValueError(f"{where} must list {[s.name for s in specs]} in that order")
    out = []
    for t, spec in zip(raw, specs):
        tw = f"{where}.{spec.name}"
        shape = t.get("shape")
        if not isinstance(shape, list) or len(shape) != len(spec.shape):
            raise ValueError(f"{tw}.shape must be a list of {len(spec.shape)} dimensions, "
                             f"got {shape!r}")
        dims = tuple(_parse_dim(d, w, f"{tw}.shape[{i}]") for i, (d, w) in
                     enumerate(zip(shape, spec.shape)))
        kind = t.get("kind", "tensor") if io == "inputs" else "tensor"
        if kind not in INPUT_KINDS:
            raise ValueError(f"{tw}.kind must be one of {INPUT_KINDS}, got {kind!r}")
        if kind == "image" and (role, spec.name) not in IMAGE_KIND_INPUTS:
            raise ValueError(f"{tw}.kind: only the encoder's image may be an image input")
        out.append(TensorSignature(spec.name, dims, kind))
    return tuple(out)


def parse_signatures(raw) -> dict[str, GraphSignature]:
    """Typed signatures from a manifest's `signatures`; ValueError naming the field otherwise.
    Each named dimension must be bound the same way everywhere in its graph."""
    if not isinstance(raw, dict):
        raise ValueError(f"signatures must be an object, got {type(raw).__name__}")
    missing = [r for r in REQUIRED_ROLES if r not in raw]
    unknown = sorted(set(raw) - set(SIGNATURE_ROLES))
    if missing or unknown:
        raise ValueError(f"signatures: missing {missing}, unknown {unknown} (roles: "
                         f"{', '.join(SIGNATURE_ROLES)})")
    out = {}
    for role, g in raw.items():
        if not isinstance(g, dict):
            raise ValueError(f"signatures.{role} must be an object, got {type(g).__name__}")
        ins, outs = SIGNATURE_ROLES[role]
        sig = GraphSignature(_parse_tensors(g.get("inputs"), ins, role, "inputs"),
                             _parse_tensors(g.get("outputs"), outs, role, "outputs"))
        bound: dict[str, int | Dim] = {}
        for t, spec in zip(sig.inputs, ins):
            for d, w in zip(t.shape, spec.shape):
                if isinstance(w, str) and bound.setdefault(w, d) != d:
                    raise ValueError(f"signatures.{role}: dimension {w!r} is {bound[w]} in one "
                                     f"input and {d} in {t.name}")
        out[role] = sig
    return out


def signature_mismatches(sig: GraphSignature, actual: dict[str, tuple[int | None, ...]]) -> list[str]:
    """Differences between a signature's inputs and a loaded graph's (None = dynamic dimension)."""
    if set(actual) != {t.name for t in sig.inputs}:
        return [f"inputs {sorted(actual)} != {sorted(t.name for t in sig.inputs)}"]
    problems = []
    for t in sig.inputs:
        got = tuple(actual[t.name])
        want = tuple(d if isinstance(d, int) else None for d in t.shape)
        if len(got) != len(want) or any(g != w for g, w in zip(got, want)):
            problems.append(f"{t.name} has shape {list(got)}, the manifest says {list(want)} "
                            f"(None = dynamic)")
    return problems


def feeds(specs: tuple[TensorSpec, ...], *arrays) -> dict:
    """{contract name: array} for a graph's inputs given in contract order."""
    if len(arrays) != len(specs):
        raise ValueError(f"expected {len(specs)} inputs ({', '.join(s.name for s in specs)}), "
                         f"got {len(arrays)}")
    return {s.name: a for s, a in zip(specs, arrays)}


def names(specs: tuple[TensorSpec, ...]) -> list[str]:
    return [s.name for s in specs]
