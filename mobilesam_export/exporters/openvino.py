"""OpenVINO IR: both graphs converted with `openvino.convert_model` from the simplified ONNX
graphs (the same traced graphs that pass ONNX parity, with the decoder's dynamic N preserved:
one trace for every format that reads ONNX, no second torch frontend to trust).

fp16: weights stored in fp16 (compress_to_fp16). int8: NNCF post-training quantization
(ModelType.TRANSFORMER) calibrated on real photos and, for the decoder, real embeddings x
realistic prompts. int8-weights: NNCF compress_weights (int8 weights, float activations)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import openvino as ov
from tqdm import tqdm

from mobilesam_runtime import contract

from .. import formats
from ..bundle import ExportOptions
from ..calibration import calibration_feeds
from ..checkpoint import LoadedModel
from ..metadata import model_metadata
from . import INT8_DECODER, compresses, decoder_precision, signatures_json
from . import onnx as onnx_exporter

FORMAT = "openvino"
# inference precisions a user can pick at run time besides f32: parity-checked at export too
RUNTIME_PRECISIONS = ("bf16", "f16")
QUANTS = formats.quants(FORMAT)
DEFAULT_QUANT = formats.default_quant(FORMAT)
# int8 (NNCF PTQ): the encoder's neck stays float, chosen by parity on real photos (random
# weights, decoder fp32): all-int8 encoder cosine 0.99973 / mask IoU 0.930; neck float 0.99987 /
# 0.945; + last stage float 0.99990 / 0.948 (not worth the largest stage's speed-up).
ENCODER_IGNORED_PATTERNS = [".*neck.*"]
# 7-bit weights in every layer (NNCF's overflow fix; its default fixes the first layer only): on
# CPUs without VNNI (AVX2) int8 u8 x s8 products are summed in saturating int16. Measured on an
# AVX2 host with the default: encoder cosine 0.9959, mask IoU 0.846 (gate refused the bundle).
OVERFLOW_FIX = "enable"


def _quantize(model: ov.Model, feeds: list[dict], ignored_patterns: list[str]) -> ov.Model:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    kwargs = {"ignored_scope": nncf.IgnoredScope(patterns=ignored_patterns)} if ignored_patterns else {}
    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix(OVERFLOW_FIX))
    return nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(feeds), advanced_parameters=advanced, **kwargs)


def _compress_weights(model: ov.Model) -> ov.Model:
    import nncf

    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)


def simplify(path: Path) -> None:
    """onnxsim on the ONNX graph before conversion: measured 4 % faster in OpenVINO (encoder
    708 vs 741 ms, 2-core AVX2 host, 2026-12-03), while onnxruntime runs it 18 % slower, so only
    OpenVINO's copy is simplified (exporters/onnx.py)."""
    import onnx
    import onnxsim

    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    if not ok:
        raise RuntimeError(f"onnxsim could not validate the simplified {path.name}")
    onnx.save(simplified, str(path))


def export(loaded: LoadedModel, out: Path, quant: str, options: ExportOptions) -> dict:
    """Write encoder.xml/.bin and decoder.xml/.bin (and the split decoder's two graphs, if asked)
    for `quant` into `out`."""
    graphs = {"encoder": "encoder.xml", "decoder": "decoder.xml"}
    if options.split_decoder:
        graphs.update(decoder_image="decoder_image.xml", decoder_prompts="decoder_prompts.xml")
    notes: dict = {"converted_from": f"onnx (opset {onnx_exporter.OPSET}, onnxsim)"}
    feeds = calibration_feeds(loaded, options.calibration_dir) if quant == "int8" else None
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        onnx_graphs = onnx_exporter.export_fp32(loaded, Path(tmp), simplify=simplify,
                                                split_decoder=options.split_decoder)
        for role in tqdm(graphs, desc=f"openvino {quant}", unit="graph"):
            model = ov.convert_model(str(Path(tmp) / onnx_graphs[role]))
            if quant == "int8" and compresses(role, quant):
                model = _quantize(model, feeds[0] if role == "encoder" else feeds[1],
                                  ENCODER_IGNORED_PATTERNS if role == "encoder" else [])
            elif quant == "int8-weights" and compresses(role, quant):
                model = _compress_weights(model)
            for k, v in model_metadata(loaded, FORMAT, quant, role).items():
                model.set_rt_info(v, ["mobilesam_export", k.split(".", 1)[1]])
            ov.save_model(model, str(out / graphs[role]), compress_to_fp16=(quant == "fp16"))
    notes["quantization"] = {
        "fp32": "none",
        "fp16": "fp16 weights (compress_to_fp16); compute precision is the runtime's hint",
        "int8": "NNCF PTQ (transformer preset) on real photos/prompts, encoder neck float; decoder "
                + ("int8" if INT8_DECODER else "kept fp32 (parity)"),
        "int8-weights": "NNCF compress_weights INT8_ASYM (int8 weights, float activations); decoder "
                        + ("int8" if INT8_DECODER else "kept fp32 (parity)"),
    }[quant]
    notes["decoder_precision"] = decoder_precision(quant)
    aux = [g.replace(".xml", ".bin") for g in graphs.values()]
    return {"graphs": graphs, "aux_files": aux, "notes": notes,  # dynamic N, as the ONNX graphs
            "signatures": signatures_json({r: contract.graph_signature(r) for r in graphs})}
