"""ONNX bundles: files, contract, metadata, dynamic N, quantized precisions, SAM's official
decoder interface driven by raw onnxruntime the way SAM's ONNX notebook does it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import mobilesam_runtime
from mobilesam_export.reference import TorchPredictor
from mobilesam_runtime import contract, transforms


def test_fp32_bundle_layout_contract_and_metadata(export, loaded):
    bundle = export("onnx", "fp32")
    m = json.loads((bundle / "manifest.json").read_text())
    assert {"encoder.onnx", "decoder.onnx"} <= set(m["files"])
    assert m["weights"]["random_weights"] is True and m["contract"] == contract.describe()
    assert m["parity"]["passed"] and m["parity"]["summary"]["mask_iou_min"] >= 0.999
    assert not list(bundle.parent.glob(".onnx-fp32.tmp-*"))
    for role, spec_in, spec_out in (("encoder", contract.ENCODER_INPUTS, contract.ENCODER_OUTPUTS),
                                    ("decoder", contract.DECODER_INPUTS, contract.DECODER_OUTPUTS)):
        model = onnx.load(str(bundle / f"{role}.onnx"))
        onnx.checker.check_model(model)
        assert [i.name for i in model.graph.input] == [s.name for s in spec_in]
        assert [o.name for o in model.graph.output] == [s.name for s in spec_out]
        for vi, spec in zip(list(model.graph.input) + list(model.graph.output), spec_in + spec_out):
            dims = [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]
            assert dims == list(spec.shape), (role, spec.name, dims)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["mobilesam_export.random_weights"] == "true"
        assert meta["mobilesam_export.role"] == role
        assert json.loads(meta["mobilesam_export.contract"]) == contract.describe()


def test_graphs_as_traced_and_spinning_option(export, photos):
    """onnxruntime bundles are not simplified (measured slower, see exporters/onnx.py); the
    backend's spinning option changes nothing in the results and refuses non-booleans."""
    bundle = export("onnx", "fp32")
    assert json.loads((bundle / "manifest.json").read_text())["notes"]["simplified_with"] is None
    image = photos["truck"]
    outs = []
    for spinning in (True, "0"):
        pred = mobilesam_runtime.load(bundle, spinning=spinning)
        assert pred.backend.spinning is (spinning is True)
        pred.set_image(image)
        outs.append(pred.predict(np.array([[500, 400]]), np.array([1]), return_logits=True)[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    with pytest.raises(ValueError, match="spinning must be true or false"):
        mobilesam_runtime.load(bundle, spinning="maybe")


@pytest.mark.parametrize("num_points", [1, 2, 5, 16])
def test_dynamic_number_of_points(export, loaded, photos, num_points):
    pred = mobilesam_runtime.load(export("onnx", "fp32"))
    ref = TorchPredictor(loaded.model)
    image = photos["groceries"]
    pred.set_image(image)
    ref.set_image(image)
    rng = np.random.default_rng(num_points)
    h, w = image.shape[:2]
    pts = rng.uniform([0, 0], [w, h], size=(num_points, 2)).astype(np.float32)
    labels = rng.integers(0, 2, num_points)
    for box in (None, np.array([0.2 * w, 0.3 * h, 0.6 * w, 0.8 * h], np.float32)):
        _, rs, rl = ref.predict(pts, labels, box=box)
        _, gs, gl = pred.predict(pts, labels, box=box)
        np.testing.assert_allclose(gl, rl, atol=1e-3)
        np.testing.assert_allclose(gs, rs, atol=1e-4)


@pytest.mark.parametrize("quant", ["fp16", "int8", "int8-static"])
def test_quantized_bundles_pass_their_gates_and_shrink(export, quant):
    fp32 = export("onnx", "fp32")
    bundle = export("onnx", quant)
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["precision"] == quant and m["parity"]["passed"], m["parity"]["failures"]
    ref = json.loads((fp32 / "manifest.json").read_text())["files"]
    enc, dec = m["files"]["encoder.onnx"]["bytes"], m["files"]["decoder.onnx"]["bytes"]
    assert enc < 0.6 * ref["encoder.onnx"]["bytes"], (quant, enc)
    if quant == "fp16":
        assert dec < 0.6 * ref["decoder.onnx"]["bytes"] and m["notes"]["decoder_precision"] == "fp16"
    else:  # int8 bundles keep the decoder float (exporters.INT8_DECODER)
        assert m["notes"]["decoder_precision"] == "fp32"
    meta = {p.key: p.value for p in onnx.load(str(bundle / "encoder.onnx")).metadata_props}
    assert meta["mobilesam_export.precision"] == quant


def test_official_decoder_as_in_sams_onnx_notebook(export, loaded, photos):
    """SAM's notebook: embeddings from the encoder, point + (0,0,-1) padding point, coordinates
    via ResizeLongestSide, zero mask_input, has_mask_input 0, orig_im_size = (H, W)."""
    bundle = export("onnx", "fp32", official_decoder=True)
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["graphs"]["decoder_official"] == "decoder_sam_official.onnx"
    enc = ort.InferenceSession(str(bundle / "encoder.onnx"))
    dec = ort.InferenceSession(str(bundle / "decoder_sam_official.onnx"))
    assert [i.name for i in dec.get_inputs()] == [s.name for s in contract.OFFICIAL_DECODER_INPUTS]
    image = photos["truck"]
    h, w = image.shape[:2]
    emb = enc.run(None, {"image": transforms.normalize_and_pad(transforms.resize_image(image))})[0]
    ref = TorchPredictor(loaded.model)
    ref.set_image(image)
    cases = [  # (points, labels, multimask as SAM selects it)
        (np.array([[500, 375], [0, 0]]), np.array([1, -1]), True),
        (np.array([[500, 375], [1125, 625], [0, 0]]), np.array([1, 1, -1]), False),
        (np.array([[575, 750], [425, 600], [700, 875]]), np.array([0, 2, 3]), False),
    ]
    for pts, labels, multimask in cases:
        coords = transforms.transform_coords(pts[None].astype(np.float32), (h, w))
        masks, scores, low = dec.run(None, {
            "image_embeddings": emb, "point_coords": coords,
            "point_labels": labels[None].astype(np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([h, w], np.float32)})
        assert masks.shape == (1, 1, h, w) and scores.shape == (1, 1) and low.shape == (1, 1, 256, 256)
        user = labels >= 0
        box = None
        if (labels == 2).any():
            box = np.concatenate([pts[labels == 2][0], pts[labels == 3][0]]).astype(np.float32)
            user = (labels == 0) | (labels == 1)
        rm, rs, rl = ref.predict(pts[user].astype(np.float32), labels[user], box=box,
                                 multimask_output=multimask, return_logits=True)
        best = int(np.argmax(rs))
        assert abs(scores[0, 0] - rs[best]) < 1e-4
        agree = np.mean((masks[0, 0] > 0) == (rm[best] > 0))
        assert agree > 0.9999, agree


def test_no_duplicated_large_constants(export):
    """The tracer writes the decoder's 4 MB positional encoding once per use; the export keeps
    one copy per graph (exporters/onnx.dedupe_constants)."""
    bundle = export("onnx", "fp32")
    m = json.loads((bundle / "manifest.json").read_text())
    for role, name in m["graphs"].items():
        model = onnx.load(str(bundle / name))
        seen = [n.attribute[0].t.SerializeToString() for n in model.graph.node
                if n.op_type == "Constant" and len(n.attribute[0].t.raw_data) >= 1 << 16]
        assert len(seen) == len(set(seen)), role
        assert m["files"][name]["bytes"] < 24e6, (role, m["files"][name]["bytes"])
