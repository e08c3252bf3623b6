"""CoreML on Linux: every precision converts, the saved spec matches the contract (names, shapes,
1-16 points, metadata), compressed weights are really smaller, and loading says macOS-only."""

from __future__ import annotations

import json
import sys

import coremltools as ct
import pytest

import mobilesam_runtime
from mobilesam_runtime import BundleError, contract

QUANTS = ("fp16", "fp32", "int8", "palettize6", "palettize4")


def _size(bundle, name: str) -> int:
    return json.loads((bundle / "manifest.json").read_text())["files"][name]["bytes"]


@pytest.mark.parametrize("quant", QUANTS)
def test_coreml_converts_with_full_interface(export, quant):
    bundle = export("coreml", quant)
    m = json.loads((bundle / "manifest.json").read_text())
    assert set(m["files"]) == {"encoder.mlpackage", "decoder.mlpackage"}
    if sys.platform != "darwin":
        assert "macOS" in m["parity"]["skipped"]
    assert m["notes"]["converted_with"]["coremltools"] == ct.__version__
    spec = ct.utils.load_spec(str(bundle / "decoder.mlpackage"))
    assert spec.WhichOneof("Type") == "mlProgram"
    names = [i.name for i in spec.description.input]
    assert names == [s.name for s in contract.DECODER_INPUTS]  # points, boxes (labels), mask_input
    coords = spec.description.input[1].type.multiArrayType.shapeRange.sizeRanges
    assert (coords[1].lowerBound, coords[1].upperBound) == (1, 16)
    assert (coords[0].lowerBound, coords[0].upperBound) == (1, 16)  # prompt batch B
    sig = contract.parse_signatures(m["signatures"])["decoder"]
    assert contract.prompt_batch(sig) == contract.Dim("num_prompts", 1, 16)
    meta = dict(spec.description.metadata.userDefined)
    assert meta["mobilesam_export.precision"] == quant and meta["mobilesam_export.random_weights"] == "true"
    assert "RANDOM" in spec.description.metadata.shortDescription
    assert spec.description.metadata.author and spec.description.metadata.license
    assert all(i.shortDescription for i in spec.description.input)


def test_compressed_weights_are_smaller(export):
    size = {q: _size(export("coreml", q), "encoder.mlpackage") for q in QUANTS}
    assert size["fp16"] < 0.55 * size["fp32"]
    assert size["int8"] < 0.6 * size["fp16"]
    assert size["palettize6"] < 0.45 * size["fp16"]
    assert size["palettize4"] < size["palettize6"]


def test_image_input_encoder(export):
    bundle = export("coreml", "fp16", image_input=True)
    spec = ct.utils.load_spec(str(bundle / "encoder.mlpackage"))
    image = spec.description.input[0].type
    assert image.WhichOneof("Type") == "imageType"
    assert (image.imageType.width, image.imageType.height) == (1024, 1024)
    assert "mean colour" in spec.description.input[0].shortDescription


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS")
def test_loading_on_linux_says_macos_only(export):
    with pytest.raises(BundleError, match="Core ML prediction runs only on macOS"):
        mobilesam_runtime.load(export("coreml", "fp16"))
