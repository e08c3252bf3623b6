"""The banded mask upscaling (transforms.upscale_plans/upscale_masks) against the dense maps it
replaces and against torch's F.interpolate, SAM's postprocess_masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mobilesam_runtime import contract, transforms

# (h, w) of original images: downscaled photos, upscaled small ones, tiny, 1x1, 2048:1 both ways
SIZES = [(1200, 1800), (1800, 1200), (3000, 4000), (1024, 1024), (600, 400), (77, 1500),
         (333, 2000), (2000, 333), (7, 5), (1, 1), (2, 3), (1, 2048), (2048, 1), (1023, 1025),
         (2100, 2100), (300, 5000)]


def _logits(rng, shape) -> np.ndarray:
    return rng.normal(0, 8, shape).astype(np.float32)  # real logits are within about +-30


def _torch_postprocess(low: np.ndarray, input_size, original_size) -> np.ndarray:
    """segment-anything's postprocess_masks: bilinear to 1024, crop, bilinear to the original."""
    x = F.interpolate(torch.from_numpy(low), (contract.IMAGE_SIZE, contract.IMAGE_SIZE),
                      mode="bilinear", align_corners=False)
    x = x[..., : input_size[0], : input_size[1]]
    return F.interpolate(x, original_size, mode="bilinear", align_corners=False).numpy()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_banded_equals_dense_and_torch(size):
    """Equal to the dense maps and to torch in float64 to 1e-5. torch in float32 computes its
    source indices in float32 (interpolation weights off by up to ~1e-4 where the scale is not a
    power of two: up to ~1e-3 on these logits): there the dense maps and we are equally far."""
    rng = np.random.default_rng(sum(size))
    inp = transforms.preprocess_shape(*size)
    low = _logits(rng, (3, 256, 256))
    got = transforms.upscale_masks(low, *transforms.upscale_plans(inp, size))
    rows, cols = transforms.upscale_matrices(inp, size)
    dense = rows @ low @ cols.T
    assert got.shape == (3, *size) and got.dtype == np.float32
    np.testing.assert_allclose(got, dense, rtol=0, atol=1e-5)
    want = _torch_postprocess(low[None].astype(np.float64), inp, size)[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    torch32 = _torch_postprocess(low[None], inp, size)[0]
    assert np.abs(got - torch32).max() <= np.abs(dense - torch32).max() + 1e-5


def test_a_wrong_plan_is_visible():
    """The comparison above can fail: another image's plan gives other logits."""
    rng = np.random.default_rng(1)
    low = _logits(rng, (1, 256, 256))
    size, inp = (1200, 1800), (683, 1024)
    want = _torch_postprocess(low[None].astype(np.float64), inp, size)[0]
    rows, cols = transforms.upscale_plans((684, 1024), size)  # a crop one pixel off
    assert np.abs(transforms.upscale_masks(low, rows, cols) - want).max() > 0.1


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plan_blocks_tile_outputs_with_narrow_windows(size):
    inp = transforms.preprocess_shape(*size)
    for plan, n, m in zip(transforms.upscale_plans(inp, size), size, inp):
        assert plan.size == n
        assert [b[0] for b in plan.blocks] == [0] + [b[1] for b in plan.blocks[:-1]]
        assert plan.blocks[-1][1] == n
        for o0, o1, i0, i1, w in plan.blocks:
            assert 0 <= plan.lo <= i0 < i1 <= plan.hi <= contract.LOW_RES_SIZE
            assert i1 - i0 <= transforms.WINDOW and w.shape == (o1 - o0, i1 - i0)
            np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)  # bilinear: a partition of unity
        # only the low-res rows/columns that cover the resized image (plus one) are read
        assert plan.hi <= -(-m * contract.LOW_RES_SIZE // contract.IMAGE_SIZE) + 2


def test_any_leading_dims_and_dtypes():
    rng = np.random.default_rng(2)
    size = (480, 640)
    plans = transforms.upscale_plans(transforms.preprocess_shape(*size), size)
    low = _logits(rng, (2, 3, 256, 256))
    batched = transforms.upscale_masks(low, *plans)
    assert batched.shape == (2, 3, *size)
    for b in range(2):
        np.testing.assert_array_equal(batched[b], transforms.upscale_masks(low[b], *plans))
    np.testing.assert_array_equal(transforms.upscale_masks(low[1, 2], *plans), batched[1, 2])
    np.testing.assert_array_equal(transforms.upscale_masks(low.astype(np.float64), *plans), batched)
    assert transforms.upscale_masks(low[:0], *plans).shape == (0, 3, *size)


def test_bad_arguments_are_named():
    size = (100, 200)
    plans = transforms.upscale_plans(transforms.preprocess_shape(*size), size)
    with pytest.raises(ValueError, match="low_res"):
        transforms.upscale_masks(np.zeros((3, 128, 128), np.float32), *plans)
    with pytest.raises(ValueError, match="low_res"):
        transforms.upscale_masks(np.zeros(256, np.float32), *plans)
    dense = transforms.upscale_matrices(transforms.preprocess_shape(*size), size)
    with pytest.raises(TypeError, match="AxisPlan"):
        transforms.upscale_masks(np.zeros((1, 256, 256), np.float32), *dense)


def _normalize_by_formula(resized: np.ndarray) -> np.ndarray:
    """The float maths the look-up table stands for (the previous implementation)."""
    mean = np.asarray(contract.PIXEL_MEAN, np.float32)
    std = np.asarray(contract.PIXEL_STD, np.float32)
    out = np.zeros((1, 3, 1024, 1024), np.float32)
    x = (resized.astype(np.float32) - mean) / std
    out[0, :, : x.shape[0], : x.shape[1]] = x.transpose(2, 0, 1)
    return out


@pytest.mark.parametrize("shape", [(683, 1024), (1024, 1024), (1024, 1), (1, 1024), (2, 3)])
def test_normalize_and_pad_is_bit_identical_to_the_formula(shape):
    rng = np.random.default_rng(shape[0])
    resized = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    resized[0, 0] = (0, 128, 255)  # both ends of the range in every channel
    resized[-1, -1] = (255, 0, 128)
    got, want = transforms.normalize_and_pad(resized), _normalize_by_formula(resized)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_normalize_every_uint8_value_of_every_channel():
    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)[None]  # 1x256x3
    got, want = transforms.normalize_and_pad(values), _normalize_by_formula(values)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert not got[0, :, 1:].any() and not got[0, :, :, 256:].any()  # the padding is zeros
    assert len(np.unique(got[0, 0, 0, :256])) == 256  # not a constant: each value its own entry


def test_normalize_a_strided_view():
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (700, 1100, 3), dtype=np.uint8)
    view = big[::-1, 50:1074, ::-1]  # BGR flip, cropped, negative strides
    np.testing.assert_array_equal(transforms.normalize_and_pad(view).view(np.uint32),
                                  _normalize_by_formula(view).view(np.uint32))
