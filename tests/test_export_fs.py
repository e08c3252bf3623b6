"""Exports and the filesystem: unusable --out, stale temp folders, modes, concurrent exports.
A cheap stand-in exporter keeps these fast; the real exporters share the same bundle code."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakes import tiny_onnx  # tests/fakes.py

from mobilesam_export import bundle as bundle_mod
from mobilesam_export import cli
from mobilesam_export.exporters import signatures_json
from mobilesam_runtime import contract, validate_bundle

LOADED = SimpleNamespace(provenance=lambda: {"source": "random", "sha256": None,
                                             "random_weights": True})


def fake_exporter(delay: float = 0.0, barrier: threading.Barrier | None = None):
    def export(loaded, out: Path, quant, options):
        for name in ("encoder.onnx", "decoder.onnx"):
            (out / name).write_bytes(tiny_onnx())
        if delay:
            time.sleep(delay)
        if barrier is not None:
            barrier.wait(timeout=30)
        return {"graphs": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
                "signatures": signatures_json({r: contract.graph_signature(r)
                                               for r in ("encoder", "decoder")})}

    return SimpleNamespace(QUANTS=("fp32",), DEFAULT_QUANT="fp32", export=export)


@pytest.fixture
def use_fake(monkeypatch):
    def install(**kw):
        fake = fake_exporter(**kw)
        monkeypatch.setattr(bundle_mod.exporters, "get", lambda fmt: fake)
        return fake

    return install


def test_out_is_an_existing_file(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("not a folder")
    assert cli.main(["export", "--weights", "random", "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert "is an existing file, not a folder" in err and "Traceback" not in err


@pytest.fixture
def read_only_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    os.chmod(d, 0o555)
    immutable = False
    if os.geteuid() == 0:  # root ignores modes: make the folder immutable instead
        immutable = subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0
    try:
        (d / "probe").write_text("x")
        (d / "probe").unlink()
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    except OSError:
        pass
    yield d
    if immutable:
        subprocess.run(["chattr", "-i", str(d)], check=True)
    os.chmod(d, 0o755)


def test_out_is_a_read_only_folder(read_only_dir, capsys):
    for out in (read_only_dir, read_only_dir / "sub"):
        assert cli.main(["export", "--weights", "random", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "is not a writable folder" in err and "Traceback" not in err


def test_stale_temp_folders_of_ours_are_cleaned(tmp_path, use_fake):
    use_fake()
    old = time.time() - bundle_mod.STALE_SECONDS - 60
    stale = [".onnx-fp32.tmp-abc123", ".tflite-int8-static.old-4242-deadbeef"]
    kept = [".onnx-fp32.tmp-fresh", ".notours.tmp-x", ".tflite-int3.tmp-x", "mydata",
            ".onnx-fp32.tmp-file"]
    for name in stale + kept[:-1]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "encoder.onnx").write_bytes(b"partial")
    (tmp_path / kept[-1]).write_text("a file, not our folder")
    for name in stale + kept[1:]:
        for p in ((tmp_path / name / "encoder.onnx"), tmp_path / name):
            if p.exists():
                os.utime(p, (old, old))
    bundle_mod.export_bundle(LOADED, "onnx", "fp32", tmp_path, run_parity=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(stale)
    assert names == set(kept) | {"onnx-fp32"}


@pytest.mark.parametrize("umask,dir_mode,file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_bundle_modes_respect_umask(tmp_path, use_fake, umask, dir_mode, file_mode):
    use_fake()
    previous = os.umask(umask)
    try:
        final = bundle_mod.export_bundle(LOADED, "onnx", "fp32", tmp_path, run_parity=False)
    finally:
        os.umask(previous)
    assert final.stat().st_mode & 0o777 == dir_mode
    for f in final.iterdir():
        assert f.stat().st_mode & 0o777 == file_mode, f.name


def test_concurrent_exports_end_with_one_complete_bundle(tmp_path, monkeypatch, use_fake):
    """Two exports enter the swap-into-place step together, 80 times (the old swap raised
    ENOTEMPTY within a few rounds here)."""
    use_fake()
    swap = bundle_mod._swap_into_place
    for i in range(80):
        barrier = threading.Barrier(2)

        def synchronised(tmp, final, barrier=barrier):
            barrier.wait(timeout=30)
            swap(tmp, final)

        monkeypatch.setattr(bundle_mod, "_swap_into_place", synchronised)
        errors: list[BaseException] = []

        def run(errors=errors):
            try:
                bundle_mod.export_bundle(LOADED, "onnx", "fp32", tmp_path, run_parity=False)
            except BaseException as e:  # the test reports any failure
                errors.append(e)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, f"round {i}: {errors!r}"
        assert [p.name for p in tmp_path.iterdir()] == ["onnx-fp32"], f"round {i}"
        validate_bundle(tmp_path / "onnx-fp32")


def test_existing_non_bundle_at_the_final_path_is_not_replaced(tmp_path, use_fake):
    use_fake()
    (tmp_path / "onnx-fp32").write_text("someone's file")
    with pytest.raises(ValueError, match="exists and is not a bundle folder"):
        bundle_mod.export_bundle(LOADED, "onnx", "fp32", tmp_path, run_parity=False)
    assert (tmp_path / "onnx-fp32").read_text() == "someone's file"
