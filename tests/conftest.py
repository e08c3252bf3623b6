"""Shared fixtures: seeded random weights in the official layout, real photos, exported bundles."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilesam_export.calibration import default_image_dir

IMAGES = default_image_dir()


@pytest.fixture(scope="session")
def loaded():
    from mobilesam_export.checkpoint import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model("random")


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    assert IMAGES.is_dir(), f"missing {IMAGES}"
    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(IMAGES.glob("*.jpg"))}


@pytest.fixture(scope="session")
def exports_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


_bundles: dict[tuple[str, str], Path] = {}


@pytest.fixture(scope="session")
def export(loaded, exports_dir):
    """export(fmt, quant, **options) -> bundle path; each bundle is exported once per session
    with its parity gate on (a failing gate fails the test that asked for it)."""
    from mobilesam_export.bundle import ExportOptions, export_bundle

    def _export(fmt: str, quant: str, **opts) -> Path:
        key = (fmt, quant, tuple(sorted(opts.items())))
        if key not in _bundles:
            out = exports_dir / "-".join(f"{k}{v}" for k, v in sorted(opts.items())) \
                if opts else exports_dir
            _bundles[key] = export_bundle(loaded, fmt, quant, out, ExportOptions(**opts))
        return _bundles[key]

    return _export
