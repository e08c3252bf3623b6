"""Shared fixtures: seeded random weights in the official layout, real photos, exported bundles."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mobilesam_runtime import RandomWeightsWarning, sample_images


@pytest.fixture(scope="session")
def loaded():
    from mobilesam_export.checkpoint import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return load_model("random")


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Every packaged photo (calibration and evaluation sets) by stem."""
    return {Path(n).stem: im for split in sample_images.SPLITS for n, im in sample_images.load(split)}


@pytest.fixture(scope="session")
def exports_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


_bundles: dict[tuple[str, str], Path] = {}


@pytest.fixture(scope="session")
def export(loaded, exports_dir):
    """export(fmt, quant, gated=True, **options) -> bundle path; each bundle is exported once per
    session with its parity gate on (a failing gate fails the test that asked for it).
    gated=False publishes it whatever its parity (recorded in its manifest): for tests of what
    an export is, not of whether it passes (e.g. file sizes)."""
    from mobilesam_export.bundle import ExportOptions, export_bundle

    def _export(fmt: str, quant: str, gated: bool = True, **opts) -> Path:
        key = (fmt, quant, tuple(sorted(opts.items())))
        if key in _bundles:
            return _bundles[key]
        if gated:
            out = exports_dir / "-".join(f"{k}{v}" for k, v in sorted(opts.items())) \
                if opts else exports_dir
            _bundles[key] = export_bundle(loaded, fmt, quant, out, ExportOptions(**opts))
            return _bundles[key]
        ungated = (*key, "ungated")
        if ungated not in _bundles:
            _bundles[ungated] = export_bundle(loaded, fmt, quant, exports_dir / "ungated",
                                              ExportOptions(**opts), parity_gate=False)
        return _bundles[ungated]

    return _export
