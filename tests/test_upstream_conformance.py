"""Our plain-torch MobileSAM against the official code (PyPI `mobilesam-mirror`, import
`mobile_sam`) with the same random state dict: the only proof here that real `mobile_sam.pt`
files export correctly. Upstream imports a few timm/torchvision helpers, given tiny stand-ins."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mobilesam_export.calibration import PROMPTS
from mobilesam_export.reference import TorchPredictor
from mobilesam_runtime import transforms

SHIMS = Path(__file__).parent / "upstream_shims"


@pytest.fixture(scope="module")
def upstream(loaded):
    sys.path.insert(0, str(SHIMS))
    try:
        try:  # `make test` installs it; a missing reference must fail, not skip
            import mobile_sam
        except ImportError as e:
            raise RuntimeError("upstream reference missing: pip install --no-deps mobilesam-mirror") from e
        model = mobile_sam.sam_model_registry["vit_t"]()
        model.load_state_dict(loaded.model.state_dict(), strict=True)
        model.eval()
        return mobile_sam, model
    finally:
        sys.path.remove(str(SHIMS))


def test_state_dict_layout_is_official(upstream, loaded):
    _, model = upstream
    theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in loaded.model.state_dict().items()}
    assert ours == theirs
    assert len(ours) == 439
    counts = {p: sum(k.startswith(p + ".") for k in ours)
              for p in ("image_encoder", "prompt_encoder", "mask_decoder")}
    assert counts == {"image_encoder": 302, "prompt_encoder": 17, "mask_decoder": 120}


def test_preprocessing_matches_upstream(upstream, photos):
    mobile_sam, model = upstream
    from mobile_sam.utils.transforms import ResizeLongestSide

    image = photos["truck"]
    theirs_resized = ResizeLongestSide(1024).apply_image(image)
    ours_resized = transforms.resize_image(image)
    np.testing.assert_array_equal(ours_resized, theirs_resized)
    x = torch.as_tensor(theirs_resized).permute(2, 0, 1)[None].float()
    theirs = model.preprocess(x).numpy()
    np.testing.assert_allclose(transforms.normalize_and_pad(ours_resized), theirs, atol=1e-5)


def test_embeddings_and_decoder_match_upstream(upstream, loaded, photos):
    mobile_sam, model = upstream
    theirs = mobile_sam.SamPredictor(model)
    ours = TorchPredictor(loaded.model)
    for name, image in photos.items():
        theirs.set_image(image)
        ours.set_image(image)
        np.testing.assert_allclose(ours.get_image_embedding(), theirs.get_image_embedding().numpy(),
                                   atol=1e-5, rtol=0, err_msg=name)
        for p in PROMPTS:
            kw = p.absolute(*image.shape[:2])
            if p.refine_from:
                kw["mask_input"] = np.full((1, 256, 256), 2.0, np.float32)
            tm, ts, tl = theirs.predict(**kw, return_logits=True)
            om, os_, ol = ours.predict(**kw, return_logits=True)
            np.testing.assert_allclose(ol, tl, atol=1e-4, err_msg=f"{name} {p.name}")
            np.testing.assert_allclose(os_, ts, atol=1e-5, err_msg=f"{name} {p.name}")
            assert np.abs(tl).max() > 1.0, "random logits too small for a meaningful IoU test"


def test_onnx_runtime_masks_equal_upstream_predictor(upstream, export, photos):
    """Upstream SamPredictor (torch pre/post-processing) vs our torch-free runtime on the ONNX
    bundle: same masks at the original size."""
    import mobilesam_runtime

    mobile_sam, model = upstream
    theirs = mobile_sam.SamPredictor(model)
    ours = mobilesam_runtime.load(export("onnx", "fp32"))
    for name, image in photos.items():
        theirs.set_image(image)
        ours.set_image(image)
        for p in PROMPTS:
            kw = p.absolute(*image.shape[:2])
            if p.refine_from:
                kw["mask_input"] = np.full((1, 256, 256), 2.0, np.float32)
            tm, ts, _ = theirs.predict(**kw)
            om, os_, _ = ours.predict(**kw)
            assert om.shape == tm.shape and om.dtype == tm.dtype == bool
            differing = np.count_nonzero(om != tm) / om.size
            assert differing < 1e-4, f"{name} {p.name}: {differing:.2e} of pixels differ"
            np.testing.assert_allclose(os_, ts, atol=1e-4)
