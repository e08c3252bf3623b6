"""Bundle integrity: tampering is caught, failed exports leave the previous bundle intact,
the parity gate refuses to publish, and the CLI reports clearly."""

from __future__ import annotations

import json
import shutil

import pytest

import mobilesam_runtime
from mobilesam_export import cli, parity
from mobilesam_export.bundle import ExportOptions, export_bundle
from mobilesam_export.exporters import onnx as onnx_exporter
from mobilesam_runtime import BundleError


@pytest.fixture
def bundle_copy(export, tmp_path):
    dst = tmp_path / "onnx-fp32"
    shutil.copytree(export("onnx", "fp32"), dst)
    return dst


def test_tampered_file_is_refused(bundle_copy):
    mobilesam_runtime.load(bundle_copy)
    with open(bundle_copy / "decoder.onnx", "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\x00" * 8)
    with pytest.raises(BundleError, match="decoder.onnx does not match the manifest"):
        mobilesam_runtime.load(bundle_copy)


def test_missing_file_and_bad_manifest(bundle_copy, tmp_path):
    (bundle_copy / "encoder.onnx").unlink()
    with pytest.raises(BundleError, match="encoder.onnx listed in the manifest is missing"):
        mobilesam_runtime.load(bundle_copy)
    with pytest.raises(BundleError, match="no manifest.json"):
        mobilesam_runtime.load(tmp_path / "nowhere")
    (bundle_copy / "manifest.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        mobilesam_runtime.load(bundle_copy)


def test_interrupted_export_keeps_previous_bundle(loaded, bundle_copy, monkeypatch):
    out = bundle_copy.parent
    before = (out / "onnx-fp32" / "manifest.json").read_text()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_exporter, "set_metadata", boom)
    with pytest.raises(KeyboardInterrupt):
        export_bundle(loaded, "onnx", "fp32", out, run_parity=False)
    assert (out / "onnx-fp32" / "manifest.json").read_text() == before
    assert [p.name for p in out.iterdir()] == ["onnx-fp32"]
    mobilesam_runtime.load(out / "onnx-fp32")


def test_failed_parity_gate_publishes_nothing(loaded, tmp_path, monkeypatch):
    monkeypatch.setitem(parity.GATES, "fp32", {"mask_iou_min": 1.01})  # unreachable
    with pytest.raises(parity.ParityError, match="onnx-fp32 failed its parity gate"):
        export_bundle(loaded, "onnx", "fp32", tmp_path, ExportOptions(), parity_images=None)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_quant(loaded, tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        export_bundle(loaded, "tensorrt", "fp32", tmp_path)
    with pytest.raises(ValueError, match="onnx supports QUANT in"):
        export_bundle(loaded, "onnx", "int3", tmp_path)


def test_cli_inspect_parity_and_errors(bundle_copy, capsys, tmp_path):
    assert cli.main(["inspect", str(bundle_copy)]) == 0
    out = capsys.readouterr().out
    assert "RANDOM" in out and "verified" in out and "point_coords" in out
    assert cli.main(["parity", str(bundle_copy), "--images", str(tmp_path)]) == 2
    assert "no images" in capsys.readouterr().err
    assert cli.main(["export", "--weights", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    m = json.loads((bundle_copy / "manifest.json").read_text())
    assert m["parity"]["passed"]
