"""Property tests over prompts, images and manifests: a valid result of the right shape, or a
ValueError/TypeError naming the argument (a BundleError naming the bundle for manifests).
The predictor runs on a fake backend (no model) so this stays fast; benchmarks/fuzz.py does
the long run against a real ONNX bundle."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from fakes import FakeBackend, make_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmarks.fuzz import classify_manifest, classify_predict, classify_set_image
from mobilesam_runtime import SamPredictor, validate_bundle

IMAGE = np.random.default_rng(1).integers(0, 256, (90, 140, 3), np.uint8)
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-2000, 2000), st.sampled_from([1e39, -1e39, 3e38, 1e20, 1e15]))
dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_, np.complex128,
                          np.dtype("m8[s]"), np.dtype("<U3"), np.dtype(object)])


def _full(shape, dtype, value) -> np.ndarray:
    if np.dtype(dtype).kind == "O":
        return np.full(shape, value, dtype=object)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # casting NaN/huge values: the point of the test
        return np.full(shape, value).astype(dtype)


def arrays(shape):
    """Arrays near the right shape with any dtype and magnitude, lists, scalars or None."""
    shapes = st.one_of(st.just(shape), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                        max_side=4))
    numeric = st.builds(_full, shapes, dtypes, floats)
    mixed = hnp.arrays(np.float64, shapes, elements=floats)
    return st.one_of(st.none(), mixed, numeric, mixed.map(lambda a: a.tolist()),
                     st.sampled_from(["abc", 3, [[1.0, 2.0], [3.0]], {"x": 1}, 1 + 2j]))


labels = st.one_of(arrays((2,)), st.lists(st.sampled_from([0, 1, -1, 2, 3, 7, 0.5]), min_size=0,
                                          max_size=3).map(np.array))
flags = st.one_of(st.booleans(), st.sampled_from([0, 1, "yes", None, np.bool_(False)]))


@pytest.fixture(scope="module")
def predictor():
    pred = SamPredictor(FakeBackend())
    pred.set_image(IMAGE)
    return pred


@SETTINGS
@given(coords=arrays((2, 2)), labels=labels, box=arrays((4,)),
       mask=st.one_of(st.none(), arrays((1, 256, 256))), multimask=flags, logits=flags)
def test_fuzz_prompts(predictor, coords, labels, box, mask, multimask, logits):
    kw = dict(point_coords=coords, point_labels=labels, box=box, mask_input=mask,
              multimask_output=multimask, return_logits=logits)
    assert classify_predict(predictor.predict, kw, IMAGE.shape[:2]) in ("ok", "clear"), kw


@SETTINGS
@given(coords=hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.just(2)),
                         elements=st.floats(-1e29, 1e29)),  # x 7.3 to the 1024 frame < 1e30
       data=st.data())
def test_fuzz_valid_prompts_give_results(predictor, coords, data):
    """Finite coordinates within the limits and SAM's labels always give a result."""
    labels = data.draw(hnp.arrays(np.int64, (coords.shape[0],), elements=st.sampled_from([0, 1])))
    kw = dict(point_coords=coords, point_labels=labels, multimask_output=data.draw(st.booleans()))
    assert classify_predict(predictor.predict, kw, IMAGE.shape[:2]) == "ok", kw


@settings(max_examples=150, deadline=None)
@given(image=st.one_of(
    hnp.arrays(st.sampled_from([np.uint8, np.float32, np.int16, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)),
    st.builds(lambda h, w: np.zeros((h, w, 3), np.uint8),
              st.integers(1, 3), st.integers(2040, 7000)),
    st.sampled_from([None, [[1, 2, 3]], "image.jpg"])),
    fmt=st.sampled_from(["RGB", "BGR", "HSV", "", None]))
def test_fuzz_images(image, fmt):
    pred = SamPredictor(FakeBackend())
    assert classify_set_image(pred.set_image, image, fmt) in ("ok", "clear")
    if pred.is_image_set:
        masks, _, _ = pred.predict(np.array([[1.0, 1.0]]), np.array([1]))
        assert masks.shape == (3, *image.shape[:2])


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 10 ** 20), st.floats(allow_nan=False),
              st.sampled_from(["", "x", "../x", "/etc/passwd", "encoder.tflite", "0" * 64])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["name", "shape", "min", "max",
                                                             "sha256", "bytes", "x"]), inner,
                                            max_size=3)),
    max_leaves=6)


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("fuzz") / "tflite-fp32")


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_manifests(good_bundle, data):
    m = json.loads((good_bundle / "manifest.json").read_text())
    original = json.dumps(m)
    try:
        for _ in range(data.draw(st.integers(1, 3))):
            path = data.draw(st.sampled_from(list(_paths(m))))
            if not path:
                m = data.draw(json_values)
                continue
            parent = m
            for k in path[:-1]:
                parent = parent[k]
            if isinstance(parent, dict) and data.draw(st.booleans()):
                del parent[path[-1]]
            else:
                parent[path[-1]] = data.draw(json_values)
        (good_bundle / "manifest.json").write_text(json.dumps(m))
        outcome = classify_manifest(validate_bundle, good_bundle)
        assert outcome in ("ok", "clear"), m
    finally:
        (good_bundle / "manifest.json").write_text(original)
