"""TFLite / LiteRT: both graphs converted with litert-torch (PyTorch -> TFLite directly, no
TensorFlow and no onnx2tf hop: one fewer converter between the reference and the file, and only
builtin ops, so the files run in a plain LiteRT interpreter on Android — checked at export).

TFLite wants static shapes: the decoder has `num_slots` prompt slots (default 16). The runtime
fills unused slots with label Label.UNUSED (-10); the graph masks those slots out of every
attention, so they have no effect (SAM's own -1 padding token does change the masks). The
decoder file has two signatures over the same weights: B = 1 (`serving_default`) and
B = `prompt_batch` (`decoder_batch`, default 16) for many prompts per call; prompt sets are
independent rows, so padding a batch with copies changes no result.

Quantization with ai-edge-quantizer: fp16 (weights cast to fp16), int8 (dynamic range: int8
weights, activations quantised at run time) and int8-static (int8 weights and activations,
calibrated on real photos), the encoder's last stage and neck kept float; the decoder stays fp32 in int8 modes
(exporters.INT8_DECODER)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import torch
from tqdm import tqdm

from mobilesam_runtime import contract

from .. import formats
from ..bundle import ExportOptions
from ..calibration import calibration_feeds
from ..checkpoint import LoadedModel
from ..graphs import DecoderGraph, EncoderGraph, example_inputs
from . import compresses, decoder_precision, signatures_json

FORMAT = "tflite"
QUANTS = formats.quants(FORMAT)
DEFAULT_QUANT = formats.default_quant(FORMAT)
SIGNATURE = "serving_default"  # B = 1
BATCH_SIGNATURE = "decoder_batch"  # B = ExportOptions.prompt_batch, same weights


def _slot_inputs(slots: int, batch: int) -> dict:
    """Example decoder inputs with `slots` prompt slots (first used, the rest UNUSED) x `batch`."""
    ex = example_inputs(slots, batch)
    ex["point_labels"] = torch.full((batch, slots), float(contract.Label.UNUSED))
    ex["point_labels"][:, 0] = 1.0
    return {s.name: ex[s.name] for s in contract.DECODER_INPUTS}
# int8-static: tensors whose name matches stay float, chosen by parity (encoder cosine on the 3
# photos): all int8 0.9949; norms/softmax/GELU/batch-matmul float 0.9948-0.9950; patch embed +
# stage 0 + neck float 0.9951; last stage + neck float 0.99983 (ai-edge-quantizer 0.10).
STATIC_FLOAT_REGEX = ".*(BasicLayer_3|neck).*"


class _NamedEncoder(EncoderGraph):
    """Dict outputs, so the TFLite signature carries the contract's names."""

    def forward(self, image):
        return {"image_embeddings": super().forward(image)}


class _NamedDecoder(DecoderGraph):
    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        iou, masks = super().forward(image_embeddings, point_coords, point_labels, mask_input,
                                     has_mask_input)
        return {"iou_predictions": iou, "low_res_masks": masks}


def _convert(signatures: list[tuple[str, torch.nn.Module, dict]], path: Path) -> None:
    """One .tflite file with one signature per (name, module, sample kwargs); signatures of the
    same module share its weights."""
    import litert_torch

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        converter = None
        for name, module, kwargs in signatures:
            add = converter.signature if converter else litert_torch.signature
            converter = add(name, module.eval(), sample_kwargs=kwargs)
        converter.convert().export(str(path))


def _fp16_recipe() -> list[dict]:
    return [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
             "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                           "compute_precision": "FLOAT", "explicit_dequantize": True}}]


def _quantize(src: Path, dst: Path, quant: str, feeds: list[dict] | None) -> None:
    from ai_edge_quantizer import quantizer, recipe

    if quant == "fp16":
        rcp = _fp16_recipe()
    elif quant == "int8":
        rcp = recipe.dynamic_wi8_afp32()
    else:
        # later entries override earlier ones for the tensors they match
        rcp = list(recipe.static_wi8_ai8()) + [
            {"regex": STATIC_FLOAT_REGEX, "operation": "*", "algorithm_key": "no_quantize",
             "op_config": {"compute_precision": "FLOAT", "explicit_dequantize": False}}]
    qt = quantizer.Quantizer(str(src), rcp)
    calibration = qt.calibrate({SIGNATURE: feeds}) if qt.need_calibration else None
    result = qt.quantize(calibration)
    result.export_model(str(dst), overwrite=True)


def check_runs_in_plain_interpreter(path: Path, signature: str = SIGNATURE) -> dict:
    """Load with ai-edge-litert's builtin-op interpreter (fails on Flex/select-TF ops) and
    return the signature's input/output names and shapes."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(str(path))
    sig = interp.get_signature_runner(signature)
    ins = {k: [int(x) for x in v["shape"]] for k, v in sig.get_input_details().items()}
    outs = {k: [int(x) for x in v["shape"]] for k, v in sig.get_output_details().items()}
    ops = {d["op_name"] for d in interp._get_ops_details()}  # noqa: SLF001
    flex = sorted(o for o in ops if o.startswith("Flex") or o == "CUSTOM")
    if flex:
        raise RuntimeError(f"{path.name} needs select-TF/custom ops {flex}: not portable")
    return {"inputs": ins, "outputs": outs, "ops": sorted(ops)}


def export(loaded: LoadedModel, out: Path, quant: str, options: ExportOptions) -> dict:
    """Write encoder.tflite and decoder.tflite for `quant` into `out`."""
    slots = options.num_slots
    if not 1 <= slots <= 64:
        raise ValueError(f"num_slots must be in 1..64, got {slots}")
    batch = options.prompt_batch
    if not 1 <= batch <= 64:
        raise ValueError(f"prompt_batch must be in 1..64, got {batch}")
    model = loaded.model
    decoder = _NamedDecoder(model, masked_slots=True)
    graphs = {"encoder": "encoder.tflite", "decoder": "decoder.tflite"}
    # the decoder file holds a B = 1 signature and (prompt_batch > 1) a B = prompt_batch one
    dec_sigs = [(SIGNATURE, "decoder", 1)] + ([(BATCH_SIGNATURE, "decoder_batch", batch)]
                                              if batch > 1 else [])
    jobs = {
        "encoder": [(SIGNATURE, _NamedEncoder(model), {"image": example_inputs()["image"]})],
        "decoder": [(name, decoder, _slot_inputs(slots, b)) for name, _, b in dec_sigs],
    }
    feeds = calibration_feeds(loaded, options.calibration_dir) if quant == "int8-static" else None
    logging.getLogger("absl").setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    checked = {}
    sigs = {"encoder": contract.graph_signature("encoder")}
    for _, role, b in dec_sigs:
        sigs[role] = contract.graph_signature(role, {"num_points": slots, "num_prompts": b})
    for role in tqdm(graphs, desc=f"tflite {quant}", unit="graph"):
        path = out / graphs[role]
        with torch.no_grad():
            _convert(jobs[role], path)
        if quant == "fp16" or compresses(role, quant):
            tmp = path.with_suffix(".q.tflite")
            _quantize(path, tmp, quant, feeds[0] if feeds else None)
            tmp.replace(path)
        for name, sig_role, _ in dec_sigs if role == "decoder" else [(SIGNATURE, role, 1)]:
            checked[sig_role] = check_runs_in_plain_interpreter(path, name)
            problems = contract.signature_mismatches(sigs[sig_role], checked[sig_role]["inputs"])
            if problems:
                raise RuntimeError(f"{path.name} ({name}): {'; '.join(problems)}")
    return {"graphs": graphs, "signatures": signatures_json(sigs), "notes": {
        "converter": "litert-torch (no TensorFlow, builtin ops only)",
        "unused_slot_label": contract.Label.UNUSED,
        "decoder_precision": "fp16 weights" if quant == "fp16" else decoder_precision(quant),
        "quantization": {
            "fp32": "none",
            "fp16": "ai-edge-quantizer float_casting: fp16 weights, fp32 compute",
            "int8": "ai-edge-quantizer dynamic_wi8_afp32: int8 weights, dynamic int8 activations",
            "int8-static": "ai-edge-quantizer static_wi8_ai8 calibrated on real photos; float: "
                           + STATIC_FLOAT_REGEX,
        }[quant],
        "signatures": checked,
        "metadata": "the contract, weights and versions are in manifest.json (TFLite files carry "
                    "no free-form metadata here)",
    }}
