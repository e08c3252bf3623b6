"""TFLite / LiteRT: fixed prompt slots whose unused entries have no effect, parity per precision
and per prompt count against the dynamic reference, portable ops only."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mobilesam_runtime
from mobilesam_export.parity import ParityError
from mobilesam_export.reference import TorchPredictor

# Found by the batch parity check (issue 12), tracked by issue 11, gate not loosened: on an AVX2
# host the tflite int8 bundle picks another mask than the reference for 1 of 20 boxes (selection
# IoU 0.33). Not strict: not yet measured on other CPUs.
INT8_BATCH_SELECTION = pytest.mark.xfail(raises=ParityError, strict=False, reason="tflite int8: 1 "
                                         "selection mismatch in the 20-box batch (issue 11)")


@pytest.mark.parametrize("quant", ["fp32", "fp16", pytest.param("int8", marks=INT8_BATCH_SELECTION),
                                   "int8-static"])
def test_tflite_bundle_passes_its_gate(export, quant):
    bundle = export("tflite", quant)
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["parity"]["passed"], m["parity"]["failures"]
    assert m["signatures"]["decoder"]["inputs"][1] == {"name": "point_coords", "shape": [1, 16, 2],
                                                       "kind": "tensor"}  # typed, read by the runtime
    for role in ("encoder", "decoder"):
        ops = m["notes"]["signatures"][role]["ops"]
        assert not [o for o in ops if o.startswith("Flex") or o == "CUSTOM"]
    sig = m["notes"]["signatures"]["decoder"]
    assert sig["inputs"]["point_coords"] == [1, 16, 2]
    assert set(sig["outputs"]) == {"iou_predictions", "low_res_masks"}


def test_quantized_sizes(export):
    size = {q: json.loads((export("tflite", q, gated=False) / "manifest.json").read_text())["files"]
            ["encoder.tflite"]["bytes"] for q in ("fp32", "fp16", "int8", "int8-static")}
    assert size["fp16"] < 0.6 * size["fp32"]
    assert size["int8"] < 0.45 * size["fp32"]  # measured 0.40: biases and norms stay float
    assert size["int8-static"] < 0.7 * size["fp32"]  # last stage + neck stay float (parity)


@pytest.mark.parametrize("num_points", [1, 2, 5, 15])
def test_fixed_slots_equal_dynamic_reference(export, loaded, photos, num_points):
    """1, 2, 5 and 15 points (+ the padding point = 16 slots), with a box and with mask_input:
    unused slots must not change anything."""
    pred = mobilesam_runtime.load(export("tflite", "fp32"))
    ref = TorchPredictor(loaded.model)
    image = photos["groceries"]
    pred.set_image(image)
    ref.set_image(image)
    h, w = image.shape[:2]
    rng = np.random.default_rng(num_points)
    pts = rng.uniform([0, 0], [w, h], size=(num_points, 2)).astype(np.float32)
    labels = rng.integers(0, 2, num_points)
    cases = [dict(), dict(mask_input=np.full((1, 256, 256), 3.0, np.float32))]
    if num_points <= 14:
        cases.append(dict(box=np.array([0.1 * w, 0.2 * h, 0.7 * w, 0.9 * h], np.float32)))
    for extra in cases:
        rm, rs, rl = ref.predict(pts, labels, return_logits=True, **extra)
        gm, gs, gl = pred.predict(pts, labels, return_logits=True, **extra)
        np.testing.assert_allclose(gl, rl, atol=1e-3)
        np.testing.assert_allclose(gs, rs, atol=1e-4)
        assert np.mean((gm > 0) == (rm > 0)) > 0.9999


def test_more_prompts_than_slots_is_a_clear_error(export, photos):
    pred = mobilesam_runtime.load(export("tflite", "fp32"), threads=1)
    pred.set_image(photos["dog"])
    pts = np.tile([[10.0, 20.0]], (16, 1))
    with pytest.raises(ValueError, match="17 prompt tokens .* exceed this bundle's 16 fixed slots"):
        pred.predict(pts, np.ones(16))
    with pytest.raises(ValueError, match="threads"):
        mobilesam_runtime.load(export("tflite", "fp32"), threads=0)
