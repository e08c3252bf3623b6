"""Upstream MobileSAM (PyPI `mobilesam-mirror`, import `mobile_sam`) as a benchmark baseline,
with the same state dict as the bundles. Upstream imports a few timm/torchvision helpers; the
repository's stand-ins (tests/upstream_shims) provide them, as in the conformance tests."""

from __future__ import annotations

import sys
from pathlib import Path

SHIMS = Path(__file__).resolve().parents[1] / "tests" / "upstream_shims"


class UpstreamMissing(ImportError):
    """mobile_sam or the shims are not available (the baseline rows are then left out)."""


def import_mobile_sam():
    """The upstream package, imported with the shims on sys.path (then removed again)."""
    if not SHIMS.is_dir():
        raise UpstreamMissing(f"upstream stand-ins not found at {SHIMS} (run from the repository)")
    sys.path.insert(0, str(SHIMS))
    try:
        import mobile_sam
        import mobile_sam.utils.onnx  # noqa: F401  (SamOnnxModel, for the naive export)
    except ImportError as e:
        raise UpstreamMissing("upstream reference missing: pip install --no-deps mobilesam-mirror") from e
    finally:
        sys.path.remove(str(SHIMS))
    return mobile_sam


def upstream_model(weights: str = "random"):
    """Upstream's vit_t Sam with the state dict of our checkpoint loader (official layout)."""
    import warnings

    from mobilesam_export.checkpoint import load_model
    from mobilesam_runtime import RandomWeightsWarning

    mobile_sam = import_mobile_sam()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        loaded = load_model(weights)
    model = mobile_sam.sam_model_registry["vit_t"]()
    model.load_state_dict(loaded.model.state_dict(), strict=True)
    return model.eval()
