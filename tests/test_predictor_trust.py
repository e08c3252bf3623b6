"""Inputs that used to give silent wrong answers, and one predictor shared by threads (issue 10)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fakes import FakeBackend  # tests/fakes.py

import mobilesam_runtime
from mobilesam_runtime import SamPredictor

IMAGE = np.random.default_rng(0).integers(0, 256, (120, 200, 3), np.uint8)


@pytest.fixture
def fake():
    pred = SamPredictor(FakeBackend())
    pred.set_image(IMAGE)
    return pred


PT, LB = np.array([[50.0, 30.0]]), np.array([1])
BAD = [
    (dict(point_coords=np.array([[1e39, 30]]), point_labels=LB), ValueError, "point_coords.*beyond"),
    (dict(point_coords=[[1e39, 30]], point_labels=[1]), ValueError, "point_coords.*beyond"),
    (dict(point_coords=np.array([[3e38, 30]]), point_labels=LB), ValueError,
     "point_coords.*1024 frame"),  # fits float32, overflows once scaled to the 1024 frame
    (dict(box=np.array([0, 0, 1e39, 10])), ValueError, "box.*beyond"),
    (dict(point_coords=PT, point_labels=LB, mask_input=np.full((1, 256, 256), 1e39)), ValueError,
     "mask_input.*beyond"),
    (dict(point_coords=PT, point_labels=LB, mask_input=np.full((1, 256, 256), 1e20, np.float32)),
     ValueError, "mask_input.*beyond"),  # float32, but LayerNorm's variance overflows
    (dict(point_coords=np.array([[50 + 3j, 30]]), point_labels=LB), TypeError,
     "point_coords must be real numbers.*complex"),
    (dict(point_coords=PT, point_labels=np.array([1 + 0j])), TypeError, "point_labels.*complex"),
    (dict(box=np.array([1, 2, 3, 4], complex)), TypeError, "box.*complex"),
    (dict(point_coords=np.array([[50, 30]], dtype=object), point_labels=LB), TypeError,
     "point_coords must be numeric.*object"),
    (dict(point_coords=np.array([[50, 30]], "m8[s]"), point_labels=LB), TypeError,
     "point_coords must be numeric"),
    (dict(point_coords=[[50, 30]], point_labels=[None]), TypeError, "point_labels must be numeric"),
]


@pytest.mark.parametrize("kwargs,exc,msg", BAD)
def test_refused_instead_of_wrong(fake, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        fake.predict(**kwargs)


def test_values_within_the_limits_work(fake):
    for v in (1e6, -1e6, 1e20):
        masks, scores, low = fake.predict(np.array([[v, 30.0]]), LB)
        assert np.isfinite(scores).all() and np.isfinite(low).all()
    m = np.full((1, 256, 256), 1e12, np.float32)
    assert np.isfinite(fake.predict(PT, LB, mask_input=m)[1]).all()


@pytest.mark.parametrize("shape", [(1, 5000, 3), (5000, 1, 3), (2, 4097, 3)])
def test_too_thin_images(shape):
    pred = SamPredictor(FakeBackend())
    with pytest.raises(ValueError, match=r"image of \d+x\d+ pixels is too thin.*2048:1"):
        pred.set_image(np.zeros(shape, np.uint8))


def test_thinnest_allowed_image(fake):
    fake.set_image(np.zeros((1, 2048, 3), np.uint8))
    masks, _, _ = fake.predict(np.array([[10.0, 0.0]]), LB)
    assert masks.shape == (3, 1, 2048)


def test_each_thread_has_its_own_image():
    pred = SamPredictor(FakeBackend())
    pred.set_image(IMAGE)
    seen = {}

    def other():
        seen["set"] = pred.is_image_set
        try:
            pred.predict(PT, LB)
        except mobilesam_runtime.NoImageError as e:
            seen["error"] = str(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen["set"] is False and "in this thread" in seen["error"]
    assert pred.is_image_set


def test_backend_calls_are_serialised_unless_thread_safe():
    images = [np.full((64, 64, 3), v, np.uint8) for v in (10, 90, 170, 250)]
    for thread_safe in (False, True):
        backend = FakeBackend(delay=0.02)
        backend.thread_safe = thread_safe
        pred = SamPredictor(backend)
        barrier = threading.Barrier(4)

        def work(image, pred=pred, barrier=barrier):
            barrier.wait()
            pred.set_image(image)
            for _ in range(3):
                pred.predict(PT, LB)

        threads = [threading.Thread(target=work, args=(im,)) for im in images]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert (backend.overlaps == 0) == (not thread_safe)


def test_shared_predictor_across_threads_gives_the_right_masks(export, photos):
    """4 threads share one ONNX predictor; each sets a different photo, then predicts 3 prompts
    once all have set theirs (the interleaving that returned wrong masks before)."""
    pred = mobilesam_runtime.load(export("onnx", "fp32"))
    names = sorted(photos)[:4]
    prompts = [(np.array([[0.3, 0.4]]), np.array([1])), (np.array([[0.6, 0.5], [0.2, 0.2]]),
                                                          np.array([1, 0])),
               (np.array([[0.5, 0.7]]), np.array([1]))]

    def run(name):
        image = photos[name]
        h, w = image.shape[:2]
        pred.set_image(image)
        barrier.wait()
        return [pred.predict(p * [w, h], lab) for p, lab in prompts]

    expected = {n: run_single(pred, photos[n], prompts) for n in names}
    barrier = threading.Barrier(len(names))
    got: dict = {}
    threads = [threading.Thread(target=lambda n=n: got.__setitem__(n, run(n))) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert set(got) == set(names)
    for n in names:
        for (em, es, el), (gm, gs, gl) in zip(expected[n], got[n]):
            assert gm.shape == em.shape, n
            np.testing.assert_array_equal(gm, em, err_msg=n)
            np.testing.assert_allclose(gs, es, atol=1e-6, err_msg=n)
            np.testing.assert_allclose(gl, el, atol=1e-5, err_msg=n)


def run_single(pred, image, prompts):
    h, w = image.shape[:2]
    pred.set_image(image)
    return [pred.predict(p * [w, h], lab) for p, lab in prompts]
