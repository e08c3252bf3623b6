"""Many prompt sets per decoder call (issue 12): `predict_batch` equals `predict` row by row in
every format that runs here, B is dynamic where the format allows, old B = 1 bundles still load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mobilesam_runtime
from mobilesam_export.graphs import DecoderGraph, example_inputs
from mobilesam_runtime import contract
from mobilesam_runtime.manifest import sha256_file


def _prompts(h: int, w: int, b: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x0, y0 = rng.uniform(0, 0.6 * w, b), rng.uniform(0, 0.6 * h, b)
    boxes = np.stack([x0, y0, x0 + 0.3 * w, y0 + 0.3 * h], 1)
    pts = np.stack([boxes[:, :2] + 5, boxes[:, 2:] - 5], 1)
    return {"boxes": boxes, "point_coords": pts, "point_labels": rng.integers(0, 2, (b, 2))}


def _rows_equal_singles(pred, image, b: int, chunk_size: int = 16) -> float:
    """predict_batch vs one predict() per row for points, boxes, both, + mask_input; returns the
    worst low-res logit difference (masks must be equal up to boundary flips)."""
    pred.set_image(image)
    p = _prompts(*image.shape[:2], b)
    worst = 0.0
    cases = [{"point_coords": p["point_coords"], "point_labels": p["point_labels"]},
             {"boxes": p["boxes"]}, dict(p)]
    for kw in cases:
        for multimask in (True, False):
            masks, scores, low = pred.predict_batch(**kw, multimask_output=multimask,
                                                    chunk_size=chunk_size)
            c = 3 if multimask else 1
            assert masks.shape == (b, c, *image.shape[:2]) and masks.dtype == bool
            assert scores.shape == (b, c) and low.shape == (b, c, 256, 256)
            for j in range(b):
                one = {"point_coords": kw["point_coords"][j], "point_labels": kw["point_labels"][j]} \
                    if "point_coords" in kw else {}
                if "boxes" in kw:
                    one["box"] = kw["boxes"][j]
                m1, s1, l1 = pred.predict(**one, multimask_output=multimask)
                worst = max(worst, float(np.abs(l1 - low[j]).max()), float(np.abs(s1 - scores[j]).max()))
                assert (m1 != masks[j]).mean() < 1e-4
    refine = pred.predict_batch(boxes=p["boxes"], mask_input=low[:, :1], multimask_output=False)[2]
    for j in range(b):
        l1 = pred.predict(box=p["boxes"][j], mask_input=low[j, :1], multimask_output=False)[2]
        worst = max(worst, float(np.abs(l1 - refine[j]).max()))
    return worst


def test_decoder_graph_rows_are_independent(loaded):
    """The graph broadcasts one embedding over B prompt sets: each row equals its B = 1 call."""
    graph = DecoderGraph(loaded.model).eval()
    ex = example_inputs(num_points=3, num_prompts=4)
    names = [s.name for s in contract.DECODER_INPUTS[1:]]
    with torch.no_grad():
        iou, low = graph(ex["image_embeddings"], *(ex[n] for n in names))
        for j in range(4):
            i1, l1 = graph(ex["image_embeddings"], *(ex[n][j:j + 1] for n in names))
            assert torch.allclose(i1, iou[j:j + 1], atol=1e-5)
            assert torch.allclose(l1, low[j:j + 1], atol=1e-4)


def test_onnx_predict_batch_equals_predict(export, photos):
    pred = mobilesam_runtime.load(export("onnx", "fp32"))
    assert pred.backend.max_batch is None  # dynamic B
    assert _rows_equal_singles(pred, photos["dog"], 5) < 1e-4
    assert _rows_equal_singles(pred, photos["dog"], 5, chunk_size=2) < 1e-4


def test_batch_bad_input_is_a_clear_error(export, photos):
    pred = mobilesam_runtime.load(export("onnx", "fp32"))
    pred.set_image(photos["dog"])
    box = np.array([[10, 10, 100, 100]], float)
    with pytest.raises(ValueError, match="Bx4"):
        pred.predict_batch(boxes=box[0])
    with pytest.raises(ValueError, match="BxNx2"):
        pred.predict_batch(point_coords=np.zeros((3, 2)), point_labels=np.ones(3))
    with pytest.raises(ValueError, match="one box per prompt set"):
        pred.predict_batch(point_coords=np.zeros((2, 1, 2)), point_labels=np.ones((2, 1)), boxes=box)
    with pytest.raises(ValueError, match="mask_input must be 1x1x256x256"):
        pred.predict_batch(boxes=box, mask_input=np.zeros((2, 1, 256, 256)))
    with pytest.raises(ValueError, match="needs point_coords or boxes"):
        pred.predict_batch()
    with pytest.raises(ValueError, match="chunk_size"):
        pred.predict_batch(boxes=box, chunk_size=0)
    with pytest.raises(ValueError, match="upscale|low_res"):
        pred.upscale_logits(np.zeros((3, 64, 64)))
    logits = pred.upscale_logits(pred.predict_batch_low_res(boxes=box)[1])
    assert logits.shape == (1, 3, *photos["dog"].shape[:2])


def test_signatures_bind_the_prompt_batch(export):
    m = json.loads((export("onnx", "fp32", official_decoder=True) / "manifest.json").read_text())
    sigs = contract.parse_signatures(m["signatures"])
    assert contract.prompt_batch(sigs["decoder"]) == contract.Dim("num_prompts")
    assert contract.prompt_batch(sigs["decoder_official"]) == 1  # SAM's interface has no batch


def test_contract_1_bundle_with_batch_one_still_runs(export, photos, tmp_path):
    """A bundle from before the prompt batch (contract 1, decoder B fixed to 1) loads, and
    predict_batch splits into single calls."""
    import shutil

    import onnx

    bundle = tmp_path / "old"
    shutil.copytree(export("onnx", "fp32"), bundle)
    model = onnx.load(str(bundle / "decoder.onnx"))
    for t in list(model.graph.input)[1:] + list(model.graph.output):
        t.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(bundle / "decoder.onnx"))
    m = json.loads((bundle / "manifest.json").read_text())
    m["contract"]["contract_version"] = 1
    m["files"]["decoder.onnx"] = {"sha256": sha256_file(bundle / "decoder.onnx"),
                                  "bytes": (bundle / "decoder.onnx").stat().st_size}
    for t in m["signatures"]["decoder"]["inputs"][1:] + m["signatures"]["decoder"]["outputs"]:
        t["shape"][0] = 1
    (bundle / "manifest.json").write_text(json.dumps(m))
    pred = mobilesam_runtime.load(bundle)
    assert pred.backend.max_batch == 1
    assert _rows_equal_singles(pred, photos["dog"], 3) < 1e-4


@pytest.mark.slow
def test_tflite_batch_signature_equals_single_calls(export, photos):
    """20 rows = one full batch of 16 + 4 single calls; 12 rows = a batch padded with copies."""
    pred = mobilesam_runtime.load(export("tflite", "fp32"))
    assert pred.backend.batch_size == 16 and pred.backend.batch_decoder is not None
    for b in (20, 12):
        assert _rows_equal_singles(pred, photos["dog"], b) < 1e-4


@pytest.mark.slow
def test_openvino_predict_batch_equals_predict(export, photos):
    pred = mobilesam_runtime.load(export("openvino", "fp32"))
    assert _rows_equal_singles(pred, photos["dog"], 5) < 1e-4
