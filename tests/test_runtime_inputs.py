"""The torch-free predictor: SAM's API, clear errors for bad input, never a wrong shape."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mobilesam_runtime
from mobilesam_runtime import NoImageError


@pytest.fixture(scope="module")
def predictor(export, photos):
    pred = mobilesam_runtime.load(export("onnx", "fp32"))
    pred.set_image(photos["dog"])
    return pred


def test_outputs_have_sams_shapes(predictor, photos):
    h, w = photos["dog"].shape[:2]
    masks, scores, low = predictor.predict(np.array([[300, 200]]), np.array([1]))
    assert masks.shape == (3, h, w) and masks.dtype == bool
    assert scores.shape == (3,) and low.shape == (3, 256, 256)
    masks, scores, low = predictor.predict(box=np.array([10, 20, 300, 400]), multimask_output=False,
                                           return_logits=True)
    assert masks.shape == (1, h, w) and masks.dtype == np.float32 and scores.shape == (1,)
    masks2, _, _ = predictor.predict(mask_input=low, box=np.array([10, 20, 300, 400]),
                                     multimask_output=False)
    assert masks2.shape == (1, h, w)
    assert predictor.get_image_embedding().shape == (1, 256, 64, 64)


def test_bgr_input_equals_rgb(export, photos):
    a, b = mobilesam_runtime.load(export("onnx", "fp32")), mobilesam_runtime.load(export("onnx", "fp32"))
    a.set_image(photos["truck"])
    b.set_image(np.ascontiguousarray(photos["truck"][..., ::-1]), image_format="BGR")
    np.testing.assert_array_equal(a.get_image_embedding(), b.get_image_embedding())


BAD_IMAGES = [
    (np.zeros((10, 10, 3), np.float32), TypeError, "uint8"),
    (np.zeros((10, 10), np.uint8), ValueError, "HxWx3"),
    (np.zeros((10, 10, 4), np.uint8), ValueError, "HxWx3"),
    (np.zeros((0, 10, 3), np.uint8), ValueError, "empty"),
    ([[1, 2, 3]], TypeError, "numpy array"),
]


@pytest.mark.parametrize("image,exc,msg", BAD_IMAGES)
def test_bad_images(export, image, exc, msg):
    pred = mobilesam_runtime.load(export("onnx", "fp32"))
    with pytest.raises(exc, match=msg):
        pred.set_image(image)
    with pytest.raises(ValueError, match="image_format"):
        pred.set_image(np.zeros((4, 4, 3), np.uint8), image_format="HSV")


def test_predict_before_set_image(export):
    pred = mobilesam_runtime.load(export("onnx", "fp32"))
    with pytest.raises(NoImageError, match="set_image"):
        pred.predict(np.array([[1, 1]]), np.array([1]))
    with pytest.raises(RuntimeError):  # SAM raises RuntimeError; ours is also a ValueError
        pred.get_image_embedding()


BAD_PROMPTS = [
    (dict(point_coords=np.array([[1, 2]])), ValueError, "point_labels must be supplied"),
    (dict(point_labels=np.array([1])), ValueError, "without point_coords"),
    (dict(point_coords=np.array([1, 2]), point_labels=np.array([1])), ValueError, "Nx2"),
    (dict(point_coords=np.array([[1, 2, 3]]), point_labels=np.array([1])), ValueError, "Nx2"),
    (dict(point_coords=np.array([[1, 2]]), point_labels=np.array([1, 0])), ValueError, "shape"),
    (dict(point_coords=np.array([[1, 2]]), point_labels=np.array([7])), ValueError, "point_labels"),
    (dict(point_coords=np.array([[np.nan, 2]]), point_labels=np.array([1])), ValueError, "NaN"),
    (dict(point_coords=np.array([["a", "b"]]), point_labels=np.array([1])), TypeError, "numeric"),
    (dict(box=np.array([1, 2, 3])), ValueError, "box"),
    (dict(box=np.zeros((2, 4))), ValueError, "box"),
    (dict(box=np.array([1, 2, 3, 4]), mask_input=np.zeros((1, 64, 64))), ValueError, "mask_input"),
    (dict(box=np.array([1, 2, 3, 4]), multimask_output="yes"), TypeError, "multimask_output"),
    (dict(), ValueError, "at least one point or a box"),
]


@pytest.mark.parametrize("kwargs,exc,msg", BAD_PROMPTS)
def test_bad_prompts(predictor, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        predictor.predict(**kwargs)


arrays = st.one_of(
    st.none(),
    st.lists(st.lists(st.one_of(st.floats(-1e4, 1e4), st.just(float('nan')), st.just(float('inf'))),
                      min_size=0, max_size=5),
             min_size=0, max_size=5).map(lambda x: np.array(x, dtype=object) if
                                         len({len(r) for r in x}) > 1 else np.array(x)),
    st.integers(-3, 3).map(lambda n: np.array([n])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(coords=arrays, labels=arrays, box=arrays, multimask=st.booleans(),
       use_mask=st.booleans())
def test_fuzz_predict_works_or_raises_clearly(predictor, photos, coords, labels, box, multimask,
                                              use_mask):
    h, w = photos["dog"].shape[:2]
    mask = np.zeros((1, 256, 256), np.float32) if use_mask else None
    try:
        masks, scores, low = predictor.predict(coords, labels, box, mask, multimask)
    except (ValueError, TypeError):
        return
    c = 3 if multimask else 1
    assert masks.shape == (c, h, w) and scores.shape == (c,) and low.shape == (c, 256, 256)
    assert np.all(np.isfinite(scores)) and np.all(np.isfinite(low))


def test_runtimes_never_import_torch(export):
    bundle = export("onnx", "fp32")
    code = (
        "import sys, numpy as np, warnings; import mobilesam_runtime\n"
        "warnings.simplefilter('ignore', mobilesam_runtime.RandomWeightsWarning)\n"
        f"p = mobilesam_runtime.load({str(bundle)!r})\n"
        "p.set_image(np.zeros((300, 200, 3), np.uint8))\n"
        "m, s, l = p.predict(np.array([[50, 60]]), np.array([1]))\n"
        "assert m.shape == (3, 300, 200)\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'mobilesam_export')]\n"
        "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
