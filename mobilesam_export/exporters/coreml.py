"""CoreML: both graphs to ML Program `.mlpackage` (coremltools), minimum target iOS 16 / macOS 13.

Why iOS 16: compressed weights (int8 `constexpr_affine_dequantize`, 4/6-bit palettes
`constexpr_lut_to_dense`) need it, and flexible input shapes in ML Programs are supported there.
The decoder keeps SAM's full interface (points, boxes as labels 2/3, mask_input/has_mask_input)
with 1-16 points and a prompt batch of 1-16 (RangeDims): the prompt encoder is written without
index_put_, so it converts.

fp16 is the default: Core ML runs fp16 on the GPU and Neural Engine anyway. int8 = linear
symmetric per-channel int8 weights; palettize6/4 = k-means 6/4-bit weight palettes
(coremltools.optimize.coreml); both on fp16 compute, and the decoder stays fp16 (see
exporters.INT8_DECODER).

Core ML *prediction* needs macOS: on Linux the bundle is converted and its spec verified
(names, shapes, flexible range, metadata, weight sizes), and parity is skipped, saying so."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from mobilesam_runtime import contract

from .. import formats
from ..bundle import ExportOptions
from ..checkpoint import LoadedModel
from ..graphs import DecoderGraph, EncoderGraph, example_inputs
from ..metadata import model_metadata
from . import compresses, decoder_precision, signatures_json

FORMAT = "coreml"
QUANTS = formats.quants(FORMAT)
DEFAULT_QUANT = formats.default_quant(FORMAT)
MAX_POINTS = 16
MAX_PROMPTS = 16  # prompt batch B: larger batches are split by the predictor
RANGES = {"num_points": MAX_POINTS, "num_prompts": MAX_PROMPTS}
CANNOT_RUN_REASON = ("Core ML prediction runs only on macOS; the bundle was converted and its "
                     "spec verified on this machine. Run `make parity FORMAT=coreml` on a Mac.")


def CAN_RUN_HERE() -> bool:  # noqa: N802 (exporter protocol constant-like hook)
    return sys.platform == "darwin"


def _inputs(role: str, image_input: bool):
    import coremltools as ct

    if role == "encoder":
        spec = contract.ENCODER_INPUTS[0]
        if image_input:
            return [ct.ImageType(name=spec.name, shape=spec.shape, scale=1.0,
                                 color_layout=ct.colorlayout.RGB)]
        return [ct.TensorType(name=spec.name, shape=spec.shape)]
    ranges = {"num_points": ct.RangeDim(lower_bound=1, upper_bound=MAX_POINTS, default=2),
              "num_prompts": ct.RangeDim(lower_bound=1, upper_bound=MAX_PROMPTS, default=1)}
    return [ct.TensorType(name=s.name, shape=tuple(ranges.get(d, d) for d in s.shape))
            for s in contract.DECODER_INPUTS]


def _compress(mlmodel, quant: str):
    from coremltools.optimize import coreml as cto

    if quant == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                         granularity="per_channel")
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    nbits = int(quant.removeprefix("palettize"))
    op = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_tensor")
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))


def _describe(mlmodel, role: str, meta: dict[str, str], image_input: bool) -> None:
    from mobilesam_export import __version__

    specs = ((contract.ENCODER_INPUTS, contract.ENCODER_OUTPUTS) if role == "encoder"
             else (contract.DECODER_INPUTS, contract.DECODER_OUTPUTS))
    for s in specs[0]:
        desc = s.description
        if role == "encoder" and image_input:
            desc = ("RGB image 1024x1024: longest side resized to 1024, padded bottom/right with "
                    "the mean colour (123.675, 116.28, 103.53) — normalisation is in the model")
        mlmodel.input_description[s.name] = desc
    for s in specs[1]:
        mlmodel.output_description[s.name] = s.description
    mlmodel.author = "mobilesam-export (MobileSAM: Zhang et al.; SAM: Meta AI)"
    mlmodel.license = "Apache-2.0 (MobileSAM and segment-anything weights and code)"
    mlmodel.version = __version__
    mlmodel.short_description = (
        f"MobileSAM {role} ({meta['mobilesam_export.precision']})"
        + (" — RANDOM WEIGHTS, pipeline test only" if meta["mobilesam_export.random_weights"] == "true"
           else ""))
    for k, v in meta.items():
        mlmodel.user_defined_metadata[k] = v


def verify_spec(path: Path, role: str, image_input: bool = False) -> dict:
    """What Linux can check of a saved .mlpackage: names, shapes, flexible range, metadata."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    ins = {i.name: i for i in spec.description.input}
    outs = [o.name for o in spec.description.output]
    want_in = contract.ENCODER_INPUTS if role == "encoder" else contract.DECODER_INPUTS
    want_out = contract.ENCODER_OUTPUTS if role == "encoder" else contract.DECODER_OUTPUTS
    if list(ins) != [s.name for s in want_in] or outs != [s.name for s in want_out]:
        raise RuntimeError(f"{path.name}: inputs {list(ins)} / outputs {outs} differ from the contract")
    for s in want_in:
        t = ins[s.name].type
        if t.WhichOneof("Type") == "imageType":
            if not (role == "encoder" and image_input):
                raise RuntimeError(f"{path.name}: unexpected image input {s.name}")
            continue
        shape = list(t.multiArrayType.shape)
        ranges = [(r.lowerBound, r.upperBound) for r in t.multiArrayType.shapeRange.sizeRanges]
        for i, d in enumerate(s.shape):
            if isinstance(d, str):
                if ranges[i] != (1, RANGES[d]):
                    raise RuntimeError(f"{path.name}: {s.name} {d} range {ranges[i]}")
            elif shape[i] != d:
                raise RuntimeError(f"{path.name}: {s.name} shape {shape} != {s.shape}")
    meta = dict(spec.description.metadata.userDefined)
    if meta.get("mobilesam_export.role") != role:
        raise RuntimeError(f"{path.name}: metadata missing")
    return {"inputs": list(ins), "outputs": outs, "point_range": [1, MAX_POINTS],
            "prompt_batch_range": [1, MAX_PROMPTS]}


def _torch_version_warning() -> str | None:
    """coremltools logs (not warns) when torch is newer than it was tested with; record it."""
    from packaging.version import Version

    try:
        from coremltools._deps import _TORCH_MAX_VERSION
    except ImportError:
        return None
    if Version(torch.__version__.split("+")[0]) <= Version(_TORCH_MAX_VERSION):
        return None
    return (f"coremltools {__import__('coremltools').__version__} was tested up to torch "
            f"{_TORCH_MAX_VERSION}; this conversion used torch {torch.__version__} and passed the "
            f"spec checks (verified_on_linux). Numerical parity needs macOS.")


def export(loaded: LoadedModel, out: Path, quant: str, options: ExportOptions) -> dict:
    """Write encoder.mlpackage and decoder.mlpackage for `quant` into `out`."""
    import coremltools as ct

    model, ex = loaded.model, example_inputs(num_prompts=2)  # B = 2: nothing specialises on 1
    graphs = {"encoder": "encoder.mlpackage", "decoder": "decoder.mlpackage"}
    jobs = {
        "encoder": (EncoderGraph(model, normalize=options.image_input), (ex["image"],)),
        "decoder": (DecoderGraph(model), tuple(ex[s.name] for s in contract.DECODER_INPUTS)),
    }
    conversion_warnings: list[str] = []
    verified = {}
    for role in tqdm(graphs, desc=f"coreml {quant}", unit="graph"):
        module, args = jobs[role]
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            traced = torch.jit.trace(module.eval(), args)
            mlmodel = ct.convert(
                traced, inputs=_inputs(role, options.image_input),
                outputs=[ct.TensorType(name=s.name) for s in (
                    contract.ENCODER_OUTPUTS if role == "encoder" else contract.DECODER_OUTPUTS)],
                convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                compute_precision=ct.precision.FLOAT32 if quant == "fp32" else ct.precision.FLOAT16)
            if compresses(role, quant):
                mlmodel = _compress(mlmodel, quant)
        conversion_warnings += [str(w.message).splitlines()[0][:200] for w in caught
                                if "coremltools" in str(w.filename)]
        _describe(mlmodel, role, model_metadata(loaded, FORMAT, quant, role), options.image_input)
        mlmodel.save(str(out / graphs[role]))
        verified[role] = verify_spec(out / graphs[role], role, options.image_input)
    sigs = {"encoder": contract.graph_signature(
                "encoder", kinds={"image": "image" if options.image_input else "tensor"}),
            "decoder": contract.graph_signature(
                "decoder", {d: contract.Dim(d, 1, n) for d, n in RANGES.items()})}
    return {"graphs": graphs, "signatures": signatures_json(sigs), "notes": {
        "minimum_deployment_target": "iOS16 / macOS13",
        "compute_precision": "fp32" if quant == "fp32" else "fp16",
        "weights": {"fp32": "fp32", "fp16": "fp16", "int8": "int8 linear symmetric per-channel",
                    "palettize6": "6-bit k-means palette", "palettize4": "4-bit k-means palette"}[quant],
        "decoder_precision": decoder_precision(quant, "fp16"),
        "verified_on_linux": verified,
        "conversion_warnings": sorted(set(conversion_warnings)),
        "converted_with": {"torch": torch.__version__, "coremltools": ct.__version__},
        "torch_version_warning": _torch_version_warning(),
        "runs_on": "macOS 13+ / iOS 16+ only (Core ML); not executable on Linux",
    }}
