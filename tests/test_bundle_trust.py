"""validate_bundle: every file the runtime opens is verified; malformed manifests, escaping
paths, special files and unlisted files are a BundleError naming the file (issue 10)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from fakes import make_bundle, tiny_onnx  # tests/fakes.py

import mobilesam_runtime
from mobilesam_export import cli
from mobilesam_runtime import BundleError, contract, manifest, validate_bundle
from mobilesam_runtime.onnx_refs import external_data_locations

HEX_RUN = re.compile(r"[0-9a-f]{12}")


def write(folder: Path, m) -> None:
    (folder / "manifest.json").write_text(json.dumps(m))


def read(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture
def fake(tmp_path) -> Path:
    return make_bundle(tmp_path / "tflite-fp32")


def test_fake_bundle_is_valid(fake):
    assert validate_bundle(fake)["format"] == "tflite"


# -- graphs must be listed, listed files must be inside -----------------------------------------
def test_graph_outside_the_bundle_is_refused(fake, tmp_path):
    other = make_bundle(tmp_path / "other")
    m = read(fake)
    for target in (str(other / "decoder.tflite"), "../other/decoder.tflite"):
        m["graphs"]["decoder"] = target
        write(fake, m)
        with pytest.raises(BundleError, match="not listed in 'files'"):
            validate_bundle(fake)
        # ...and listing it too does not help: the path itself is refused, unread
        m2 = copy.deepcopy(m)
        m2["files"][target] = m2["files"]["decoder.tflite"]
        write(fake, m2)
        with pytest.raises(BundleError, match="not a plain relative path") as e:
            validate_bundle(fake)
        assert not HEX_RUN.search(str(e.value))


def test_unlisted_graph_inside_the_bundle_is_refused(fake):
    (fake / "decoder2.tflite").write_bytes(b"altered")
    m = read(fake)
    m["graphs"]["decoder"] = "decoder2.tflite"
    write(fake, m)
    with pytest.raises(BundleError, match=r"graphs.decoder \('decoder2.tflite'\) is not listed"):
        validate_bundle(fake)


def test_empty_files_is_refused(fake):
    m = read(fake)
    m["files"] = {}
    write(fake, m)
    with pytest.raises(BundleError, match="'files' is empty"):
        validate_bundle(fake)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "./decoder.tflite",
                                  "a//b", ".hidden", "sub/../decoder.tflite", "C:\\x", "x\x00y", ""])
def test_files_entries_must_be_plain_relative_paths(fake, name):
    m = read(fake)
    m["files"][name] = {"sha256": "0" * 64, "bytes": 1}
    write(fake, m)
    with pytest.raises(BundleError, match="not a plain relative path") as e:
        validate_bundle(fake)
    assert not HEX_RUN.search(str(e.value).replace(str(fake), ""))


def test_symlinks_are_refused(fake, tmp_path):
    outside = tmp_path / "outside.tflite"
    outside.write_bytes((fake / "decoder.tflite").read_bytes())
    (fake / "decoder.tflite").unlink()
    (fake / "decoder.tflite").symlink_to(outside)
    with pytest.raises(BundleError, match="decoder.tflite is a symlink"):
        validate_bundle(fake)
    (fake / "decoder.tflite").unlink()
    os.symlink("/dev/zero", fake / "decoder.tflite")
    with pytest.raises(BundleError, match="decoder.tflite is a symlink"):
        validate_bundle(fake)


def test_symlinked_folder_on_the_way_is_refused(tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    b = make_bundle(tmp_path / "b", files={"encoder.tflite": b"e", "sub/decoder.tflite": b"d"},
                    graphs={"encoder": "encoder.tflite", "decoder": "sub/decoder.tflite"})
    validate_bundle(b)
    shutil.move(str(b / "sub"), str(real / "sub"))
    (b / "sub").symlink_to(real / "sub")
    with pytest.raises(BundleError, match="sub is a symlink, not a folder of the bundle"):
        validate_bundle(b)


def test_fifo_and_directory_are_refused_without_blocking(fake):
    (fake / "decoder.tflite").unlink()
    os.mkfifo(fake / "decoder.tflite")
    result: list = []

    def run():
        try:
            validate_bundle(fake)
        except BundleError as e:
            result.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(20)
    assert result and "decoder.tflite is a FIFO" in str(result[0])
    (fake / "decoder.tflite").unlink()
    (fake / "decoder.tflite").mkdir()
    with pytest.raises(BundleError, match="decoder.tflite is a directory; only .mlpackage"):
        validate_bundle(fake)


def test_size_is_checked_before_hashing_and_capped(fake, monkeypatch):
    with open(fake / "decoder.tflite", "ab") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match=r"decoder.tflite has \d+ bytes, the manifest says"):
        validate_bundle(fake)
    make_bundle(fake)
    monkeypatch.setattr(manifest, "MAX_FILE_BYTES", 8)
    with pytest.raises(BundleError, match="exceeds the .* cap"):
        validate_bundle(fake)


def test_tampering_message_names_the_file_not_hashes(fake):
    data = bytearray((fake / "decoder.tflite").read_bytes())
    data[0] ^= 1
    (fake / "decoder.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="decoder.tflite does not match the manifest") as e:
        validate_bundle(fake)
    assert not HEX_RUN.search(str(e.value).replace(str(fake), ""))
    validate_bundle(fake, verify=False)  # sizes and paths only


# -- implied files ------------------------------------------------------------------------------
def test_openvino_bin_must_be_listed(tmp_path):
    files = {"encoder.xml": b"<net/>", "decoder.xml": b"<net/>", "encoder.bin": b"w"}
    b = make_bundle(tmp_path / "ov", "openvino", files,
                    {"encoder": "encoder.xml", "decoder": "decoder.xml"})
    with pytest.raises(BundleError, match="decoder.xml makes the runtime open decoder.bin, which is "
                                          "not listed"):
        validate_bundle(b)
    files["decoder.bin"] = b"w"
    validate_bundle(make_bundle(tmp_path / "ov2", "openvino", files,
                                {"encoder": "encoder.xml", "decoder": "decoder.xml"}))


def test_onnx_external_data_must_be_listed(tmp_path):
    folder = tmp_path / "onnx"
    folder.mkdir()
    ext = tiny_onnx("weights.bin", folder)
    assert external_data_locations(ext) == ["weights.bin"]
    assert external_data_locations(tiny_onnx()) == []
    files = {"encoder.onnx": tiny_onnx(), "decoder.onnx": ext}
    b = make_bundle(folder, "onnx", files)
    with pytest.raises(BundleError, match="decoder.onnx makes the runtime open weights.bin"):
        validate_bundle(b)
    files["weights.bin"] = (folder / "weights.bin").read_bytes()
    validate_bundle(make_bundle(folder, "onnx", files))
    files = {"encoder.onnx": tiny_onnx(), "decoder.onnx": tiny_onnx("../../etc/passwd")}
    with pytest.raises(BundleError, match="external data location '../../etc/passwd' is not a plain"):
        validate_bundle(make_bundle(tmp_path / "onnx2", "onnx", files))
    files["decoder.onnx"] = b"\x0a\xff\xff\xff\xff\x0f"  # a field longer than the file
    with pytest.raises(BundleError, match="decoder.onnx is not a well-formed ONNX model"):
        validate_bundle(make_bundle(tmp_path / "onnx3", "onnx", files))


def test_real_onnx_bundle_has_no_external_data(export):
    bundle = export("onnx", "fp32")
    assert external_data_locations((bundle / "decoder.onnx").read_bytes()) == []


# -- CoreML packages ----------------------------------------------------------------------------
def test_mlpackage_directories(tmp_path):
    files = {"encoder.mlpackage/Manifest.json": b"{}", "encoder.mlpackage/Data/m.bin": b"w",
             "decoder.mlpackage/Manifest.json": b"{}"}
    b = tmp_path / "coreml"
    for n, data in files.items():
        (b / n).parent.mkdir(parents=True, exist_ok=True)
        (b / n).write_bytes(data)
    b = make_bundle(b, "coreml", files={})  # list the two packages, not their insides
    m = read(b)
    for n in ("encoder.mlpackage", "decoder.mlpackage"):
        sha, size = manifest.digest(b / n)
        m["files"][n] = {"sha256": sha, "bytes": size}
    m["signatures"]["decoder"] = contract.graph_signature(
        "decoder", {"num_points": contract.Dim("num_points", 1, 16)}).to_json()
    write(b, m)
    validate_bundle(b)
    (b / "encoder.mlpackage/Data/m.bin").write_bytes(b"W")
    with pytest.raises(BundleError, match="encoder.mlpackage does not match"):
        validate_bundle(b)
    (b / "encoder.mlpackage/Data/m.bin").write_bytes(b"w")
    os.symlink("/etc/passwd", b / "encoder.mlpackage/Data/link")
    with pytest.raises(BundleError, match="encoder.mlpackage/Data/link is not a regular file or "
                                          "folder \\(a symlink\\)"):
        validate_bundle(b)
    (b / "encoder.mlpackage/Data/link").unlink()
    os.mkfifo(b / "encoder.mlpackage/fifo")
    with pytest.raises(BundleError, match="encoder.mlpackage/fifo is not a regular file or folder"):
        validate_bundle(b, verify=False)


def test_digest_separates_names_from_contents(tmp_path):
    a, b = tmp_path / "a.mlpackage", tmp_path / "b.mlpackage"
    (a / "x").mkdir(parents=True)
    (b / "x").mkdir(parents=True)
    (a / "x" / "ab").write_bytes(b"c")
    (b / "x" / "a").write_bytes(b"bc")
    assert manifest.digest(a)[0] != manifest.digest(b)[0]


# -- malformed manifests: BundleError, never AttributeError/KeyError/TypeError -------------------
def _mutations(m: dict):
    yield "a list", []
    yield "null", None
    yield "a number", 3
    for key in ("contract", "graphs", "files", "weights", "signatures", "format", "manifest_version"):
        d = copy.deepcopy(m)
        d[key] = None
        yield f"{key}: null", d
        d = copy.deepcopy(m)
        del d[key]
        yield f"no {key}", d
    d = copy.deepcopy(m)
    del d["files"]["encoder.tflite"]["sha256"]
    yield "entry without sha256", d
    for bad in ("12", -1, True, 1.5, None, float("inf")):
        d = copy.deepcopy(m)
        d["files"]["encoder.tflite"]["bytes"] = bad
        yield f"bytes {bad!r}", d
    d = copy.deepcopy(m)
    d["files"]["encoder.tflite"] = "sha"
    yield "entry a string", d
    d = copy.deepcopy(m)
    d["files"]["encoder.tflite"]["sha256"] = "Z" * 64
    yield "sha256 not hex", d
    d = copy.deepcopy(m)
    d["graphs"] = ["encoder.tflite", "decoder.tflite"]
    yield "graphs a list", d
    d = copy.deepcopy(m)
    d["graphs"]["decoder"] = 7
    yield "graph name a number", d
    d = copy.deepcopy(m)
    d["weights"]["random_weights"] = "yes"
    yield "random_weights a string", d
    d = copy.deepcopy(m)
    d["contract"] = {"contract_version": "1"}
    yield "contract version a string", d
    d = copy.deepcopy(m)
    d["signatures"]["decoder"]["inputs"][1]["shape"][1] = {"name": "num_points", "min": 5, "max": 2}
    yield "point range max < min", d
    d = copy.deepcopy(m)
    d["signatures"]["decoder"]["inputs"][1]["shape"][1] = 8  # labels still say 16
    yield "inconsistent slots", d
    d = copy.deepcopy(m)
    d["signatures"]["encoder"]["inputs"][0]["shape"] = [1, 3, 512, 512]
    yield "wrong static shape", d
    d = copy.deepcopy(m)
    d["signatures"]["decoder"]["inputs"][1]["kind"] = "image"
    yield "image kind on points", d
    d = copy.deepcopy(m)
    d["signatures"]["decoder"]["inputs"] = ["image_embeddings"]
    yield "inputs not objects", d
    d = copy.deepcopy(m)
    d["parity"] = {"passed": True, "summary": {"mask_iou_min": "high"}}
    yield "parity summary a string", d


def test_malformed_manifests_are_bundle_errors(fake, capsys):
    good = read(fake)
    cases = list(_mutations(good))
    assert len(cases) > 30
    for label, m in cases:
        write(fake, m)
        with pytest.raises(BundleError) as e:
            validate_bundle(fake)
        assert type(e.value) is BundleError, label
        assert str(fake) in str(e.value), label
        assert cli.main(["inspect", str(fake)]) == 2, label
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, label


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000,
                                 b'{"bytes": 1' + b"0" * 5000 + b"}"])
def test_unparseable_manifests(fake, raw):
    (fake / "manifest.json").write_bytes(raw)
    with pytest.raises(BundleError, match="not valid JSON"):
        validate_bundle(fake)


def test_manifest_itself_must_be_a_bounded_regular_file(fake, tmp_path, monkeypatch):
    text = (fake / "manifest.json").read_text()
    (tmp_path / "m.json").write_text(text)
    (fake / "manifest.json").unlink()
    (fake / "manifest.json").symlink_to(tmp_path / "m.json")
    with pytest.raises(BundleError, match="manifest.json is a symlink"):
        validate_bundle(fake)
    (fake / "manifest.json").unlink()
    (fake / "manifest.json").write_text(text)
    monkeypatch.setattr(manifest, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(BundleError, match="over the .* cap"):
        validate_bundle(fake)


def test_old_manifests_ask_for_a_re_export(fake):
    m = read(fake)
    del m["manifest_version"], m["signatures"]
    write(fake, m)
    with pytest.raises(BundleError, match="manifest version None.*Re-export"):
        validate_bundle(fake)


# -- signatures against the real graphs -----------------------------------------------------------
def test_signature_must_match_the_loaded_graph(export, tmp_path):
    bundle = tmp_path / "onnx-fp32"
    shutil.copytree(export("onnx", "fp32"), bundle)
    m = read(bundle)
    sig = contract.parse_signatures(m["signatures"])
    assert sig["decoder"].input("point_coords").shape[1] == contract.Dim("num_points", 1, None)
    assert sig["encoder"].input("image").kind == "tensor"
    m["signatures"]["decoder"] = contract.graph_signature("decoder", {"num_points": 16}).to_json()
    write(bundle, m)
    with pytest.raises(BundleError, match="decoder graph does not match the manifest's signature: "
                                          "point_coords has shape"):
        mobilesam_runtime.load(bundle)


def test_cli_parity_and_inspect_refuse_a_graph_outside(export, tmp_path, capsys):
    bundle = tmp_path / "onnx-fp32"
    shutil.copytree(export("onnx", "fp32"), bundle)
    altered = tmp_path / "altered.onnx"
    shutil.copy(bundle / "decoder.onnx", altered)
    m = read(bundle)
    m["graphs"]["decoder"] = str(altered)
    write(bundle, m)
    for argv in (["inspect", str(bundle)], ["parity", str(bundle)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "not listed in 'files'" in err and "Traceback" not in err
