"""Lightweight MobileSAM runtimes: numpy + Pillow + one runtime library per format.

    import mobilesam_runtime
    predictor = mobilesam_runtime.load("exports/onnx-fp32")
    predictor.set_image(rgb_uint8)
    masks, scores, low_res = predictor.predict(point_coords=[[500, 375]], point_labels=[1])

Never imports torch or the exporter, so it embeds in edge applications.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .amg_utils import MissingExtraError
from .automatic import SamAutomaticMaskGenerator
from .backends import BACKENDS, MissingRuntimeError, import_backend
from .manifest import BundleError, validate_bundle
from .predictor import NoImageError, SamPredictor

__version__ = "0.1.0"
__all__ = ["load", "validate_bundle", "SamPredictor", "BundleError", "NoImageError",
           "MissingRuntimeError", "RandomWeightsWarning", "BACKENDS", "SamAutomaticMaskGenerator",
           "MissingExtraError"]


class RandomWeightsWarning(UserWarning):
    """A model or bundle made from seeded random weights: fine for testing, meaningless masks."""


def load(bundle_dir: str | Path, verify: bool = True, **backend_options) -> SamPredictor:
    """A predictor for the bundle at `bundle_dir`; its format picks the backend.

    The bundle goes through `validate_bundle` first (schema, paths, sizes, and with `verify`
    every file's sha256). Backend options are format-specific (e.g. threads=2 for ONNX/TFLite,
    device="CPU" for OpenVINO). The predictor may be shared across threads (see SamPredictor)."""
    bundle = Path(bundle_dir)
    manifest = validate_bundle(bundle, verify=verify)
    fmt = manifest["format"]
    if fmt not in BACKENDS:
        raise BundleError(f"{bundle}: unknown format {fmt!r}; known: {', '.join(BACKENDS)}")
    if manifest["weights"]["random_weights"]:
        warnings.warn(f"{bundle} was exported from RANDOM weights: its masks are meaningless.",
                      RandomWeightsWarning, stacklevel=2)
    module = import_backend(fmt)
    return SamPredictor(module.Backend(bundle, manifest, **backend_options), manifest)
