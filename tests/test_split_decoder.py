"""The split decoder (contract.SPLIT_DECODER_ROLES): the decoder cut at the image, exact against
the whole decoder graph, and used by the runtime only where it applies (no mask input)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import mobilesam_runtime
from mobilesam_export.graphs import DecoderGraph, DecoderImageGraph, DecoderPromptsGraph
from mobilesam_export.modeling.factored import STATE_NAMES
from mobilesam_runtime import BundleError, contract

# (points in the 1024 frame, labels) per prompt set: SAM's token layouts (padding point, box
# corners, negative points, many points)
PROMPTS = [
    ([[300, 200], [0, 0]], [1, -1]),
    ([[100, 120], [700, 650]], [2, 3]),
    ([[350, 300], [100, 120], [700, 650]], [0, 2, 3]),
    ([[10, 20], [500, 500], [900, 100], [640, 700], [1000, 1000], [0, 0]], [1, 1, 0, 1, 0, -1]),
]


@pytest.fixture(scope="module")
def embedding(loaded, photos) -> torch.Tensor:
    """A real photo's embedding (the split's algebra meets realistic token statistics)."""
    from mobilesam_export.reference import TorchPredictor

    ref = TorchPredictor(loaded.model)
    ref.set_image(photos["truck"])
    return ref.features


def test_state_is_the_contracts(loaded, embedding):
    with torch.no_grad():
        state = DecoderImageGraph(loaded.model)(embedding)
    assert STATE_NAMES == tuple(s.name for s in contract.DECODER_STATE)
    assert [tuple(t.shape) for t in state] == [s.shape for s in contract.DECODER_STATE]
    assert contract.DECODER_PROMPTS_INPUTS[-2:] == contract.DECODER_INPUTS[1:3]


@pytest.mark.parametrize("rows", [[0], [1], [2], [3], [0, 0, 0]])
def test_split_equals_the_whole_decoder(loaded, embedding, rows):
    """Logits and scores of the split decoder vs DecoderGraph with has_mask_input = 0 (several
    rows of one prompt layout: the prompt batch B as well)."""
    coords = torch.tensor([PROMPTS[r][0] for r in rows], dtype=torch.float32)
    coords = coords + torch.arange(len(rows)).view(-1, 1, 1) * 37.0  # rows differ
    labels = torch.tensor([PROMPTS[r][1] for r in rows], dtype=torch.float32)
    b = len(rows)
    with torch.no_grad():
        iou, low = DecoderGraph(loaded.model)(embedding, coords, labels, torch.zeros(b, 1, 256, 256),
                                              torch.zeros(b))
        state = DecoderImageGraph(loaded.model)(embedding)
        iou2, low2 = DecoderPromptsGraph(loaded.model)(*state, coords, labels)
    assert low.abs().max() > 1.0  # logits of a size where float rounding shows
    assert (low - low2).abs().max().item() <= 1e-4
    assert (iou - iou2).abs().max().item() <= 1e-5
    assert torch.equal(low > 0, low2 > 0) or ((low > 0) != (low2 > 0)).float().mean() < 1e-5


def test_runtime_split_path(export, photos):
    """An ONNX bundle carries the split decoder; predict/predict_batch through it equal the
    whole decoder's (split_decoder=False); a mask_input prompt, or more tokens than
    SPLIT_MAX_TOKENS, goes to the whole decoder; and a
    replaced embedding (the `features` setter) gets its own state, never the old image's."""
    bundle = export("onnx", "fp32")
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["graphs"]["decoder_image"] == "decoder_image.onnx"
    assert m["graphs"]["decoder_prompts"] == "decoder_prompts.onnx"
    split = mobilesam_runtime.load(bundle)
    whole = mobilesam_runtime.load(bundle, split_decoder="false")
    assert split.backend.split_decoder and not whole.backend.split_decoder
    truck, dog = photos["truck"], photos["dog"]
    for p in (split, whole):
        p.set_image(truck)
    assert "decoder_state" in split.timings
    kw = {"point_coords": np.array([[500, 375], [1100, 600]]), "point_labels": np.array([1, 0])}
    a, b = split.predict(**kw, return_logits=True), whole.predict(**kw, return_logits=True)
    np.testing.assert_allclose(a[2], b[2], atol=1e-4)
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    boxes = np.array([[100, 100, 900, 700], [400, 300, 1500, 1100], [0, 0, 1800, 1200]])
    sa, la = split.predict_batch_low_res(boxes=boxes)
    sb, lb = whole.predict_batch_low_res(boxes=boxes)
    np.testing.assert_allclose(la, lb, atol=1e-4)
    np.testing.assert_allclose(sa, sb, atol=1e-5)

    calls = []
    split.backend.decode_prompts = lambda *a: calls.append(a) or (_ for _ in ()).throw(
        AssertionError("split decoder used with a mask input"))
    refined = split.predict(**kw, mask_input=a[2][:1], multimask_output=False)
    np.testing.assert_allclose(refined[2], whole.predict(**kw, mask_input=a[2][:1],
                                                         multimask_output=False)[2], atol=1e-4)
    many = {"point_coords": np.random.default_rng(0).uniform(0, 1200, (8, 2)),
            "point_labels": np.ones(8)}  # 8 points + padding: beyond SPLIT_MAX_TOKENS
    np.testing.assert_allclose(split.predict(**many)[1], whole.predict(**many)[1], atol=1e-5)
    assert not calls
    del split.backend.decode_prompts  # the instance attribute; the method is back

    other = mobilesam_runtime.load(bundle)
    other.set_image(dog)
    split.features = other.features  # truck's sizes, dog's embedding
    whole.features = other.features
    np.testing.assert_allclose(split.predict(**kw, return_logits=True)[2],
                               whole.predict(**kw, return_logits=True)[2], atol=1e-4)


def test_half_a_split_decoder_is_refused(export, tmp_path):
    src = export("onnx", "fp32")
    bundle = tmp_path / "b"
    shutil.copytree(src, bundle)
    path = bundle / "manifest.json"
    m = json.loads(path.read_text())
    del m["graphs"]["decoder_prompts"], m["signatures"]["decoder_prompts"]
    path.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="split decoder needs both"):
        mobilesam_runtime.load(bundle)
