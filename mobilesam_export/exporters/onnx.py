"""ONNX: both graphs via torch.onnx (TorchScript exporter, dynamic B and N), checked with
onnx.checker; fp16, int8 dynamic and int8 static QDQ (onnxruntime.quantization, calibrated on
real photos). Not simplified with onnxsim (measured slower in onnxruntime: see the note
above REDUCE_RANGE)."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from tqdm import tqdm

from mobilesam_runtime import contract

from .. import formats
from ..bundle import ExportOptions
from ..calibration import calibration_feeds
from ..checkpoint import LoadedModel
from ..graphs import (
    DecoderGraph,
    DecoderImageGraph,
    DecoderPromptsGraph,
    EncoderGraph,
    OfficialDecoderGraph,
    example_inputs,
)
from ..metadata import model_metadata
from . import compresses, decoder_precision, signatures_json

FORMAT = "onnx"
QUANTS = formats.quants(FORMAT)
DEFAULT_QUANT = formats.default_quant(FORMAT)
OPSET = 17  # LayerNormalization is native; every op runs in onnxruntime and OpenVINO
# Kept float in int8-static: these op types (positional-encoding trig, softmax, layer norm) and
# the encoder's neck (1x1 + 3x3 conv with LayerNorm2d, ~3% of the FLOPs). Measured on 3 photos
# x 7 prompts (random weights, decoder fp32): all-int8 encoder cosine 0.99925 / mask IoU 0.897;
# neck float 0.99951 / 0.936; neck + last stage float 0.99989 / 0.971 (but that stage is the
# largest, so the speed-up would mostly go).
STATIC_EXCLUDE_OP_TYPES = ("Sin", "Cos", "Softmax", "LayerNormalization")
FLOAT_SCOPES = ("/neck/",)
# Not simplified with onnxsim. Measured A/B on one quiet 2-core AVX2 host (2026-12-03,
# interleaved, 10 runs, encoder p50): onnxruntime 819 ms as traced vs 994 ms simplified (18 %
# slower; the cause was not traced; decoder 66 vs 69 ms), so ONNX and web bundles ship the graph
# as traced (OpenVINO simplifies its copy: see exporters/openvino.py). Opset 20 (native Gelu):
# 822 vs 819 ms in onnxruntime on that host, no gain, so OPSET stays 17.
# 7-bit weights: onnxruntime's x86 int8 kernels without VNNI (AVX2 CPUs) multiply u8 x s8 pairs
# into saturating int16 sums, so large activations overflow. Measured on an AVX2 host: the int8
# bundles failed their gates with 8-bit weights; on an unseen outlier checkpoint, int8 dynamic
# embedding cosine 0.43 (8-bit) vs 0.988 (7-bit). VNNI CPUs lose ~1 bit of weight precision.
REDUCE_RANGE = True


def _names(specs) -> list[str]:
    return [s.name for s in specs]


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs, outputs,
            dynamic_axes: dict | None = None) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # known and harmless: shapes traced as constants (the contract fixes them), and the
        # notice that dynamo=False is the legacy exporter (chosen: see module docstring)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        torch.onnx.export(module.eval(), args, str(path), input_names=_names(inputs),
                          output_names=_names(outputs), opset_version=OPSET,
                          dynamic_axes=dynamic_axes, do_constant_folding=True, dynamo=False)


def dynamic_axes(specs) -> dict[str, dict[int, str]]:
    """torch.onnx's dynamic_axes for the contract's named (str) dimensions of these tensors."""
    axes = {s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)} for s in specs}
    return {name: a for name, a in axes.items() if a}


def _stamp_output_shapes(path: Path, outputs) -> None:
    """Write the contract's output shapes (static sizes, named dims) into the graph, where
    tracing left generated symbols (e.g. low_res_masks' 4x256x256 behind a dynamic reshape)."""
    model = onnx.load(str(path))
    specs = {s.name: s for s in outputs}
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        for dim, want in zip(dims, specs[out.name].shape):
            if isinstance(want, int):
                dim.dim_value = want
            else:
                dim.dim_param = want
    onnx.save(model, str(path))


def dedupe_constants(path: Path, min_bytes: int = 1 << 16) -> int:
    """Fold identical large Constant nodes into one (the tracer writes a buffer once per use:
    the decoder's 4 MB positional encoding three times); returns the bytes saved."""
    model = onnx.load(str(path))
    first: dict[bytes, str] = {}
    alias: dict[str, str] = {}
    keep, saved = [], 0
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        value = node.attribute[0].t if node.op_type == "Constant" and node.attribute \
            and node.attribute[0].name == "value" else None
        if value is not None and len(value.raw_data) >= min_bytes:
            key = value.SerializeToString()
            if key in first:
                alias[node.output[0]] = first[key]
                saved += len(value.raw_data)
                continue
            first[key] = node.output[0]
        keep.append(node)
    if saved:
        if any(o.name in alias for o in model.graph.output):
            raise RuntimeError(f"{path.name}: a graph output is a duplicated constant")
        del model.graph.node[:]
        model.graph.node.extend(keep)
        onnx.save(model, str(path))
    return saved


def set_metadata(path: Path, meta: dict[str, str]) -> None:
    """Write string metadata into an ONNX file's metadata_props (replacing ours)."""
    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "mobilesam-export"
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))


def export_fp32(loaded: LoadedModel, out: Path, official_decoder: bool = False,
                simplify: Callable[[Path], None] | None = None,
                split_decoder: bool = False) -> dict[str, str]:
    """Trace and export the fp32 graphs (each rewritten in place by `simplify`, if given), with
    SAM's official decoder and the split decoder if asked; returns {role: filename}."""
    model = loaded.model
    ex = example_inputs()
    # traced with B = 2 so that nothing specialises on a batch of one
    batch = example_inputs(num_prompts=2)
    dec_args = tuple(batch[s.name] for s in contract.DECODER_INPUTS)
    official_args = tuple(ex[s.name] for s in contract.OFFICIAL_DECODER_INPUTS)
    graphs = {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}
    jobs = [
        ("encoder", EncoderGraph(model), (ex["image"],), contract.ENCODER_INPUTS,
         contract.ENCODER_OUTPUTS),
        ("decoder", DecoderGraph(model), dec_args, contract.DECODER_INPUTS,
         contract.DECODER_OUTPUTS),
    ]
    if official_decoder:
        graphs["decoder_official"] = "decoder_sam_official.onnx"
        jobs.append(("decoder_official", OfficialDecoderGraph(model), official_args,
                     contract.OFFICIAL_DECODER_INPUTS, contract.OFFICIAL_DECODER_OUTPUTS))
    if split_decoder:
        image_graph = DecoderImageGraph(model)
        with torch.no_grad():
            state = image_graph(ex["image_embeddings"])
        graphs.update(decoder_image="decoder_image.onnx", decoder_prompts="decoder_prompts.onnx")
        jobs += [("decoder_image", image_graph, (ex["image_embeddings"],),
                  contract.DECODER_IMAGE_INPUTS, contract.DECODER_STATE),
                 ("decoder_prompts", DecoderPromptsGraph(model),
                  (*state, batch["point_coords"], batch["point_labels"]),
                  contract.DECODER_PROMPTS_INPUTS, contract.DECODER_OUTPUTS)]
    for role, module, args, ins, outs in tqdm(jobs, desc="onnx export", unit="graph"):
        path = out / graphs[role]
        with torch.no_grad():
            _export(module, args, path, ins, outs, dynamic_axes(ins + outs))
        dedupe_constants(path)
        if simplify:
            simplify(path)
        _stamp_output_shapes(path, outs)
        onnx.checker.check_model(str(path), full_check=True)
    return graphs


def to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and compute, fp32 inputs/outputs. onnxruntime's converter: onnxconverter-common
    1.16 leaves Cast(to=float) nodes typed fp16 in the decoder, which then fails to load."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True))
    model.topological_sort()  # the converter appends its input casts at the end of the graph
    onnx.save(model.model, str(dst))


def to_int8_dynamic(src: Path, dst: Path) -> None:
    """int8 weights, activations quantised at run time (MatMul/Gemm; convolutions stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, reduce_range=REDUCE_RANGE,
                     op_types_to_quantize=["MatMul", "Gemm"])


class _Reader:
    """onnxruntime CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: list[dict]) -> None:
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def to_int8_static(src: Path, dst: Path, feeds: list[dict], exclude_op_types=()) -> None:
    """QDQ int8 (per-channel weights, calibrated activations) keeping given op types float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    model = onnx.load(str(pre))
    exclude = [n.name for n in model.graph.node
               if n.op_type in exclude_op_types or any(s in n.name for s in FLOAT_SCOPES)]
    quantize_static(str(pre), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, reduce_range=REDUCE_RANGE, nodes_to_exclude=exclude,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    pre.unlink(missing_ok=True)


def export(loaded: LoadedModel, out: Path, quant: str, options: ExportOptions) -> dict:
    """Write the bundle's graphs for `quant` into `out`."""
    graphs = export_fp32(loaded, out, options.official_decoder, split_decoder=options.split_decoder)
    notes: dict = {"opset": OPSET, "simplified_with": None}
    if quant != "fp32":
        feeds = calibration_feeds(loaded, options.calibration_dir) if quant == "int8-static" else None
        # SAM's official decoder is never int8
        roles = [r for r in graphs if quant == "fp16" or (compresses(r, quant) and r != "decoder_official")]
        for role in tqdm(roles, desc=f"quantize {quant}", unit="graph"):
            src = out / graphs[role]
            dst = src.with_name(src.stem + ".q.onnx")
            if quant == "fp16":
                to_fp16(src, dst)
            elif quant == "int8":
                to_int8_dynamic(src, dst)
            else:
                to_int8_static(src, dst, feeds[0] if role == "encoder" else feeds[1],
                               STATIC_EXCLUDE_OP_TYPES)
            dst.replace(src)
        notes["quantization"] = {
            "fp16": "onnxruntime.transformers float16 conversion, fp32 I/O kept",
            "int8": "onnxruntime quantize_dynamic: int8 MatMul/Gemm weights, dynamic activations; "
                    "convolutions stay fp32",
            "int8-static": "onnxruntime quantize_static QDQ, per-channel int8 weights, uint8 "
                           "activations calibrated (MinMax) on real photos; kept float: "
                           + ", ".join(STATIC_EXCLUDE_OP_TYPES) + ", encoder neck",
        }[quant]
        notes["decoder_precision"] = decoder_precision(quant)
    for role, name in graphs.items():
        set_metadata(out / name, model_metadata(loaded, FORMAT, quant, role))
    # dynamic B and N (and the official decoder's output size): the contract's unbounded Dims
    return {"graphs": graphs, "notes": notes,
            "signatures": signatures_json({r: contract.graph_signature(r) for r in graphs})}
