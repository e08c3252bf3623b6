"""ONNX: both graphs via torch.onnx (TorchScript exporter, dynamic N), simplified with onnxsim,
checked with onnx.checker; fp16, int8 dynamic and int8 static QDQ
(onnxruntime.quantization, calibrated on real photos)."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from tqdm import tqdm

from mobilesam_runtime import contract

from .. import formats
from ..bundle import ExportOptions
from ..calibration import calibration_feeds
from ..checkpoint import LoadedModel
from ..graphs import DecoderGraph, EncoderGraph, OfficialDecoderGraph, example_inputs
from ..metadata import model_metadata
from . import compresses, decoder_precision

FORMAT = "onnx"
QUANTS = formats.quants(FORMAT)
DEFAULT_QUANT = formats.default_quant(FORMAT)
OPSET = 17  # LayerNormalization is native; every op runs in onnxruntime and OpenVINO
# Kept float in int8-static: these op types (positional-encoding trig, softmax, layer norm).
# Which encoder stages also stay float is chosen per checkpoint (mixed_precision.search).
STATIC_EXCLUDE_OP_TYPES = ("Sin", "Cos", "Softmax", "LayerNormalization")


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


def _simplify(path: Path) -> None:
    import onnxsim

    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    if not ok:
        raise RuntimeError(f"onnxsim could not validate the simplified {path.name}")
    onnx.save(simplified, str(path))


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


def export_fp32(loaded: LoadedModel, out: Path, official_decoder: bool = False) -> dict[str, str]:
    """Trace, export and simplify the fp32 graphs; returns {role: filename}."""
    model = loaded.model
    ex = example_inputs()
    dec_args = tuple(ex[s.name] for s in contract.DECODER_INPUTS)
    graphs = {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}
    jobs = [
        ("encoder", EncoderGraph(model), (ex["image"],), contract.ENCODER_INPUTS,
         contract.ENCODER_OUTPUTS, None),
        ("decoder", DecoderGraph(model), dec_args, contract.DECODER_INPUTS,
         contract.DECODER_OUTPUTS,
         {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}),
    ]
    if official_decoder:
        graphs["decoder_official"] = "decoder_sam_official.onnx"
        jobs.append(("decoder_official", OfficialDecoderGraph(model), dec_args + (ex["orig_im_size"],),
                     contract.OFFICIAL_DECODER_INPUTS, contract.OFFICIAL_DECODER_OUTPUTS,
                     {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"},
                      "masks": {2: "orig_height", 3: "orig_width"}}))
    for role, module, args, ins, outs, dyn in tqdm(jobs, desc="onnx export", unit="graph"):
        path = out / graphs[role]
        with torch.no_grad():
            _export(module, args, path, ins, outs, dyn)
        _simplify(path)
        onnx.checker.check_model(str(path))
    return graphs


def to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and compute, fp32 inputs/outputs. onnxruntime's converter: onnxconverter-common
    1.16 leaves Cast(to=float) nodes typed fp16 in the decoder, which then fails to load."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True))
    model.topological_sort()  # the converter appends its input casts at the end of the graph
    onnx.save(model.model, str(dst))


def to_int8_dynamic(src: Path, dst: Path, exclude: list[str] = ()) -> None:
    """int8 weights, activations quantised at run time (MatMul/Gemm; convolutions stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=list(exclude))


class _Reader:
    """onnxruntime CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: list[dict]) -> None:
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def to_int8_static(src: Path, dst: Path, feeds: list[dict] | None, exclude: list[str] = (),
                   cache: Path | None = None) -> None:
    """QDQ int8 (per-channel weights, MinMax-calibrated activations), `exclude` nodes float.
    `src` must be pre-processed (`quant_pre_process`). With `cache`, activation ranges are
    calibrated once and reused (onnxruntime's calibration cache)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    hit = cache is not None and cache.is_file()
    quantize_static(str(src), str(dst), None if hit else _Reader(feeds), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, nodes_to_exclude=list(exclude),
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                    **({"calibration_cache_path": str(cache)} if cache else {}))


def _preprocessed(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return dst


def _excluded(path: Path, float_units, op_types=()) -> list[str]:
    """Node names of the given encoder stages (torch scopes /<unit>/) and op types."""
    scopes = [f"/{u}/" for u in float_units]
    return [n.name for n in onnx.load(str(path)).graph.node
            if n.op_type in op_types or any(s in n.name for s in scopes)]


def quantize_encoder(loaded: LoadedModel, src: Path, dst: Path, quant: str, options: ExportOptions,
                     feeds: list[dict] | None) -> dict:
    """int8 / int8-static encoder with the float stages chosen for this checkpoint
    (mixed_precision.search); returns the choice's record."""
    import onnxruntime as ort

    from .. import mixed_precision
    from ..parity import gate_for

    scorer = mixed_precision.Scorer(loaded.model, options.calibration_dir)
    target = mixed_precision.target_for(gate_for(quant, loaded.random_weights))
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".search-") as tmp:
        work = Path(tmp)
        pre = _preprocessed(src, work / "pre.onnx") if quant == "int8-static" else src

        def quantize(units: frozenset[str]) -> Path:
            out = work / f"encoder-{'-'.join(sorted(units)) or 'int8'}.onnx"
            if quant == "int8":
                to_int8_dynamic(pre, out, _excluded(pre, units))
            else:
                to_int8_static(pre, out, feeds, _excluded(pre, units, STATIC_EXCLUDE_OP_TYPES),
                               cache=work / "calibration.json")
            return out

        def embed(path: Path) -> list[np.ndarray]:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return [sess.run(None, {"image": x})[0] for x in scorer.encoder_inputs()]

        print(f"choosing float stages for {quant} on the calibration photos (target {target})")
        best, record = mixed_precision.search(quantize, embed, scorer,
                                              mixed_precision.unit_flops(loaded.model), target)
        shutil.copyfile(best, dst)
    return record


def export(loaded: LoadedModel, out: Path, quant: str, options: ExportOptions) -> dict:
    """Write the bundle's graphs for `quant` into `out`."""
    graphs = export_fp32(loaded, out, options.official_decoder)
    notes: dict = {"opset": OPSET, "simplified_with": "onnxsim"}
    if quant != "fp32":
        feeds = calibration_feeds(loaded, options.calibration_dir) if quant == "int8-static" else None
        # SAM's official decoder is never int8
        roles = [r for r in graphs if quant == "fp16" or (compresses(r, quant) and r != "decoder_official")]
        for role in tqdm(roles, desc=f"quantize {quant}", unit="graph"):
            src = out / graphs[role]
            dst = src.with_name(src.stem + ".q.onnx")
            if quant == "fp16":
                to_fp16(src, dst)
            elif role == "encoder":
                notes["mixed_precision"] = quantize_encoder(loaded, src, dst, quant, options,
                                                            feeds[0] if feeds else None)
            elif quant == "int8":
                to_int8_dynamic(src, dst)
            else:
                pre = _preprocessed(src, dst.with_suffix(".pre.onnx"))
                to_int8_static(pre, dst, feeds[1], _excluded(pre, (), STATIC_EXCLUDE_OP_TYPES))
                pre.unlink()
            dst.replace(src)
        notes["quantization"] = {
            "fp16": "onnxruntime.transformers float16 conversion, fp32 I/O kept",
            "int8": "onnxruntime quantize_dynamic: int8 MatMul/Gemm weights, dynamic activations; "
                    "convolutions stay fp32; float encoder stages: see mixed_precision",
            "int8-static": "onnxruntime quantize_static QDQ, per-channel int8 weights, uint8 "
                           "activations calibrated (MinMax) on the calibration photos; kept float: "
                           + ", ".join(STATIC_EXCLUDE_OP_TYPES) + " and the encoder stages in "
                           "mixed_precision (chosen for this checkpoint)",
        }[quant]
        notes["decoder_precision"] = decoder_precision(quant)
    for role, name in graphs.items():
        set_metadata(out / name, model_metadata(loaded, FORMAT, quant, role))
    return {"graphs": graphs, "notes": notes}
