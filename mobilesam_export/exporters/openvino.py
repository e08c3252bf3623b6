"""OpenVINO IR: both graphs converted with `openvino.convert_model` from the simplified ONNX
graphs (the same traced graphs that pass ONNX parity, with the decoder's dynamic N preserved:
one trace for every format that reads ONNX, no second torch frontend to trust).

fp16: weights stored in fp16 (compress_to_fp16). int8: NNCF post-training quantization
(ModelType.TRANSFORMER) calibrated on real photos and, for the decoder, real embeddings x
realistic prompts. int8-weights: NNCF compress_weights (int8 weights, float activations)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
from tqdm import tqdm

from .. import formats
from ..bundle import ExportOptions
from ..calibration import calibration_feeds
from ..checkpoint import LoadedModel
from ..metadata import model_metadata
from . import INT8_DECODER, compresses, decoder_precision
from . import onnx as onnx_exporter

FORMAT = "openvino"
QUANTS = formats.quants(FORMAT)
DEFAULT_QUANT = formats.default_quant(FORMAT)
# int8 / int8-weights: which encoder stages stay float is chosen per checkpoint
# (mixed_precision.search), by node-name patterns of the stages' torch scopes.


def _patterns(units) -> list[str]:
    return [f".*/{u}/.*" for u in units]


def _quantize(model: ov.Model, feeds: list[dict], float_units=()) -> ov.Model:
    import nncf

    kwargs = {"ignored_scope": nncf.IgnoredScope(patterns=_patterns(float_units), validate=False)} \
        if float_units else {}
    return nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(feeds), **kwargs)


def _compress_weights(model: ov.Model, float_units=()) -> ov.Model:
    import nncf

    kwargs = {"ignored_scope": nncf.IgnoredScope(patterns=_patterns(float_units), validate=False)} \
        if float_units else {}
    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM, **kwargs)


def quantize_encoder(loaded: LoadedModel, onnx_path: Path, quant: str, options: ExportOptions,
                     feeds: list[dict] | None) -> tuple[ov.Model, dict]:
    """The int8 encoder with the float stages chosen for this checkpoint, and the record."""
    from .. import mixed_precision
    from ..parity import gate_for

    scorer = mixed_precision.Scorer(loaded.model, options.calibration_dir)
    target = mixed_precision.target_for(gate_for(quant, loaded.random_weights))
    core = ov.Core()
    models: dict[Path, ov.Model] = {}  # candidates stay in memory, keyed by a name

    def quantize(units: frozenset[str]) -> Path:
        model = ov.convert_model(str(onnx_path))
        model = _quantize(model, feeds, units) if quant == "int8" else _compress_weights(model, units)
        path = onnx_path.with_name(f"encoder-{'-'.join(sorted(units)) or 'int8'}.xml")
        models[path] = model
        return path

    def embed(path: Path) -> list[np.ndarray]:
        compiled = core.compile_model(models[path], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return [compiled({"image": x})["image_embeddings"].copy() for x in scorer.encoder_inputs()]

    print(f"choosing float stages for {quant} on the calibration photos (target {target})")
    best, record = mixed_precision.search(quantize, embed, scorer,
                                          mixed_precision.unit_flops(loaded.model), target)
    return models[best], record


def export(loaded: LoadedModel, out: Path, quant: str, options: ExportOptions) -> dict:
    """Write encoder.xml/.bin and decoder.xml/.bin for `quant` into `out`."""
    graphs = {"encoder": "encoder.xml", "decoder": "decoder.xml"}
    notes: dict = {"converted_from": f"onnx (opset {onnx_exporter.OPSET}, onnxsim)"}
    feeds = calibration_feeds(loaded, options.calibration_dir) if quant == "int8" else None
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        onnx_graphs = onnx_exporter.export_fp32(loaded, Path(tmp))
        for role in tqdm(graphs, desc=f"openvino {quant}", unit="graph"):
            src = Path(tmp) / onnx_graphs[role]
            if role == "encoder" and compresses(role, quant):
                model, notes["mixed_precision"] = quantize_encoder(
                    loaded, src, quant, options, feeds[0] if feeds else None)
            else:
                model = ov.convert_model(str(src))
                if quant == "int8" and compresses(role, quant):
                    model = _quantize(model, feeds[1])
                elif quant == "int8-weights" and compresses(role, quant):
                    model = _compress_weights(model)
            for k, v in model_metadata(loaded, FORMAT, quant, role).items():
                model.set_rt_info(v, ["mobilesam_export", k.split(".", 1)[1]])
            ov.save_model(model, str(out / graphs[role]), compress_to_fp16=(quant == "fp16"))
    notes["quantization"] = {
        "fp32": "none",
        "fp16": "fp16 weights (compress_to_fp16); compute precision is the runtime's hint",
        "int8": "NNCF PTQ (transformer preset) on the calibration photos/prompts, float encoder "
                "stages chosen for this checkpoint (mixed_precision); decoder "
                + ("int8" if INT8_DECODER else "kept fp32 (parity)"),
        "int8-weights": "NNCF compress_weights INT8_ASYM (int8 weights, float activations), "
                        "float stages per mixed_precision; decoder "
                        + ("int8" if INT8_DECODER else "kept fp32 (parity)"),
    }[quant]
    notes["decoder_precision"] = decoder_precision(quant)
    aux = [g.replace(".xml", ".bin") for g in graphs.values()]
    return {"graphs": graphs, "aux_files": aux, "notes": notes}
