"""OpenVINO bundles: IR files, rt_info metadata, parity per precision, device/precision options."""

from __future__ import annotations

import json

import numpy as np
import openvino as ov
import pytest

import mobilesam_runtime
from mobilesam_export.parity import ParityError
from mobilesam_export.reference import TorchPredictor
from mobilesam_runtime.bench.machine import cpu_facts

# Known failure, tracked by issue 11 (not a loosened gate): NNCF int8 PTQ of the random-weight
# encoder (7-bit weights, the overflow fix that CPUs without VNNI need) reaches cosine >= 0.999 but
# mask IoU < 0.90, so the gate refuses the bundle: 0.854 on an AVX2 host (2026-12-02), 0.857 on
# an AVX-512 VNNI host (2026-12-08; 0.945 there in 2026-11 with 8-bit weights). Strict: the test
# fails as soon as the bundle passes.
INT8_REFUSED_HERE = pytest.mark.xfail(raises=ParityError, strict=True,
                                      reason="openvino int8 refused by its gate (issue 11)")


@pytest.mark.parametrize("quant", ["fp32", "fp16", pytest.param("int8", marks=INT8_REFUSED_HERE),
                                   "int8-weights"])
def test_openvino_bundle_passes_its_gate(export, quant):
    bundle = export("openvino", quant)
    m = json.loads((bundle / "manifest.json").read_text())
    assert set(m["files"]) == {f"{g}.{ext}" for g in ("encoder", "decoder", "decoder_image",
                                                       "decoder_prompts") for ext in ("xml", "bin")}
    assert m["parity"]["passed"], m["parity"]["failures"]
    if quant.startswith("int8"):
        assert m["notes"]["decoder_precision"] == "fp32"
    model = ov.Core().read_model(str(bundle / "encoder.xml"))
    assert model.get_rt_info(["mobilesam_export", "precision"]).astype(str) == quant
    assert model.get_rt_info(["mobilesam_export", "random_weights"]).astype(str) == "true"
    dec = ov.Core().read_model(str(bundle / "decoder.xml"))
    assert dec.input("point_coords").get_partial_shape()[1].is_dynamic


def test_quantized_weights_are_smaller(export):
    sizes = {q: json.loads((export("openvino", q, gated=False) / "manifest.json").read_text())["files"]
             ["encoder.bin"]["bytes"] for q in ("fp32", "fp16", "int8", "int8-weights")}
    assert sizes["fp16"] < 0.55 * sizes["fp32"]
    # int8 PTQ keeps the neck, norms and attention biases float: ~0.48 of fp32 measured
    assert sizes["int8"] < 0.55 * sizes["fp32"] and sizes["int8-weights"] < 0.4 * sizes["fp32"]


def test_dynamic_points_and_bf16_option(export, loaded, photos):
    bundle = export("openvino", "fp32")
    ref = TorchPredictor(loaded.model)
    image = photos["truck"]
    ref.set_image(image)
    f32 = mobilesam_runtime.load(bundle, precision="f32")
    bf16 = mobilesam_runtime.load(bundle, precision="bf16")
    assert f32.backend.precision == "f32"
    for pred in (f32, bf16):
        pred.set_image(image)
    for n in (1, 2, 5, 16):
        pts = np.stack([np.linspace(100, 1700, n), np.linspace(100, 1100, n)], 1)
        labels = np.arange(n) % 2
        _, rs, rl = ref.predict(pts, labels)
        _, gs, gl = f32.predict(pts, labels)
        np.testing.assert_allclose(gl, rl, atol=1e-3)
        _, bs, bl = bf16.predict(pts, labels)
        assert bl.shape == rl.shape and np.all(np.isfinite(bl))


def test_bad_device_and_precision(export):
    bundle = export("openvino", "fp32")
    with pytest.raises(ValueError, match="device 'NPU' is not available here; available: CPU"):
        mobilesam_runtime.load(bundle, device="NPU")
    with pytest.raises(ValueError, match="precision must be one of"):
        mobilesam_runtime.load(bundle, precision="int4")


# Known failure, not a loosened gate: on CPUs with bf16 units OpenVINO runs the bf16 hint as bf16
# (and the f16 hint as bf16 too, on x86 without fp16 units). The decoders run f32 whatever the
# hint (backends/openvino.py), but the random-weight encoder in bf16 still moves the texture
# masks: mask IoU 0.987 < 0.99 (encoder cosine 0.99998; measured 2026-12-08, AMD EPYC with
# AVX-512 BF16). Where the CPU runs f32 instead, the record must pass. Strict: fails as soon as
# bf16 passes.
BF16_REFUSED_HERE = pytest.mark.xfail("BF16" in cpu_facts()["isa"], raises=AssertionError,
                                      strict=True, reason="openvino bf16 on a bf16 CPU: mask IoU "
                                      "0.987 < 0.99 on random weights (issue 11)")


@pytest.mark.parametrize("prec", [pytest.param("bf16", marks=BF16_REFUSED_HERE),
                                  pytest.param("f16", marks=BF16_REFUSED_HERE)])
def test_runtime_precision_passes_its_gate(export, prec):
    """bf16 and f16 are gated at export like the default (issue 11), with the fp16 family's
    gate, and recorded with the precision the device really ran."""
    from mobilesam_export.parity import gate_for

    rec = json.loads((export("openvino", "fp32") / "manifest.json").read_text())["parity_runtime"][prec]
    assert rec["gate"] == gate_for("fp32+" + prec, True)  # the fp16 family: not the f32 gate
    assert rec["gate"]["mask_iou_min"] == 0.99 and "embedding_spread_min" in rec["gate"]
    # what the CPU ran: f32 without reduced-precision units, else a precision it has
    assert rec["effective_precision"] in ("f32", "bf16", "f16")
    if "BF16" not in cpu_facts()["isa"] and "NEON" not in cpu_facts()["isa"]:
        assert rec["effective_precision"] == "f32"
    assert rec["passed"], rec["failures"]


def test_failed_runtime_precision_warns(export, tmp_path):
    """A failed parity record makes loading that precision warn (where the device runs it)."""
    import shutil
    import warnings

    bundle = export("openvino", "fp32")
    m = json.loads((bundle / "manifest.json").read_text())
    copy = tmp_path / "ov"
    shutil.copytree(bundle, copy)
    m["parity_runtime"]["bf16"].update(passed=False, failures=["mask_iou_min 0.5 < gate 0.99"],
                                       effective_precision="bf16")
    (copy / "manifest.json").write_text(json.dumps(m))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred = mobilesam_runtime.load(copy, precision="bf16")
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if pred.backend.effective_precision == "f32":  # this CPU runs bf16 as f32: nothing to flag
        assert not any("FAILED" in s for s in msgs)
    else:
        assert any("FAILED its parity gate" in s for s in msgs), msgs


def test_model_cache_respects_the_precision(export, photos, tmp_path):
    """One cache folder for f32 and bf16 loads: each load computes what an uncached load of its
    precision computes (a cache keyed without the precision would hand bf16 the f32 graph)."""
    bundle = export("openvino", "fp32")
    image = photos["dog"]
    out = {}
    for prec in ("f32", "bf16"):
        for cache in (None, tmp_path / "cache"):
            pred = mobilesam_runtime.load(bundle, precision=prec, cache_dir=cache, split_decoder=False)
            pred.set_image(image)
            out[prec, cache is not None] = pred.get_image_embedding()
    assert any((tmp_path / "cache").iterdir())
    for prec in ("f32", "bf16"):
        np.testing.assert_array_equal(out[prec, True], out[prec, False])
    if "BF16" in cpu_facts()["isa"]:  # the two precisions differ here, so the check has teeth
        assert np.abs(out["f32", False] - out["bf16", False]).max() > 1e-3
