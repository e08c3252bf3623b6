"""Web bundles: mobilesam.js's maths against the Python runtime (Node), the bundle exported and
gated in a real headless Chromium, hash checks refusing a tampered graph in the page, clear
errors for bad input, the threads/isolation rule, the demo page, and `serve`'s headers."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from mobilesam_export import cli, parity, serve
from mobilesam_export.exporters import web as web_exporter
from mobilesam_runtime import contract, transforms
from mobilesam_runtime.predictor import prompt_tokens

WEB_SRC = Path(resources.files("mobilesam_export") / "web")
IN_CI = os.environ.get("CI") == "true"


def _require(ok: bool, reason: str) -> None:
    """Skip with the install command as the reason; in CI (CI=true) fail instead."""
    if ok:
        return
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    from mobilesam_export.webdriver import CHROMIUM, INSTALL_HINT, chromium_available

    _require(chromium_available(), f"headless Chromium ({CHROMIUM}) or playwright missing: {INSTALL_HINT}")


@pytest.fixture(scope="module")
def web_bundle(chromium, export):
    cached = web_exporter.cache_dir() / "npm" / f"onnxruntime-web-{web_exporter.ORT_WEB_VERSION}.tgz"
    _require(shutil.which("npm") is not None or cached.is_file(), "npm missing: apt-get install -y npm")
    return export("web", "fp32")


@pytest.fixture(scope="module")
def page_predictor(web_bundle):
    from mobilesam_export.webdriver import WebPredictor

    with WebPredictor(web_bundle) as p:
        yield p


# -- the JS maths, under Node (no browser) ---------------------------------------------------------

def test_transforms_js_equal_python_runtime(tmp_path, photos):
    node = shutil.which("node")
    _require(node is not None, "node missing: apt-get install -y nodejs")
    shutil.copy(WEB_SRC / "transforms.js", tmp_path / "transforms.mjs")
    rng = np.random.default_rng(0)
    images = [(n, photos[n]) for n in ("truck", "dog", "grace_hopper")]
    for h, w in ((77, 1500), (1023, 1025), (300, 200), (1024, 700), (2000, 1500)):
        images.append((f"random{h}x{w}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    cases: dict = {"mean": list(contract.PIXEL_MEAN), "std": list(contract.PIXEL_STD),
                   "images": [], "upscale": [], "tokens": []}
    for i, (name, im) in enumerate(images):
        h, w = im.shape[:2]
        rgba = np.concatenate([im, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], 2)  # alpha ignored
        resized = transforms.resize_image(im)
        rgba.tofile(tmp_path / f"rgba{i}.bin")
        resized.tofile(tmp_path / f"resized{i}.bin")
        case = {"name": name, "width": w, "height": h, "rgba": f"rgba{i}.bin", "resized": f"resized{i}.bin"}
        if i < 3:
            transforms.normalize_and_pad(resized).tofile(tmp_path / f"norm{i}.bin")
            case["normalized"] = f"norm{i}.bin"
        cases["images"].append(case)
    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    blob = (8 * np.cos(7 * xx) * np.sin(5 * yy) - 1).astype(np.float32)  # smooth, like a trained mask
    blob[100:110, 50:60] = 0.0  # exact zeros: not a positive logit
    sizes = (((683, 1024), (1200, 1800)), ((1024, 874), (600, 512)), ((53, 1024), (77, 1500)),
             ((1024, 1024), (2048, 2048)))
    upscale_cases = [(inp, orig, kind) for kind in ("noise", "blob") for inp, orig in sizes]
    for i, (inp, orig, kind) in enumerate(upscale_cases):
        low = rng.normal(0, 3, (256, 256)).astype(np.float32) if kind == "noise" else blob
        rows, cols = transforms.upscale_plans(inp, orig)
        low.tofile(tmp_path / f"low{i}.bin")
        transforms.upscale_masks(low[None], rows, cols)[0].astype(np.float32).tofile(tmp_path / f"up{i}.bin")
        cases["upscale"].append({"input_size": inp, "original_size": orig, "low": f"low{i}.bin",
                                 "logits": f"up{i}.bin"})
    prompts = [([[10.5, 20.25], [1799.0, 0.0]], [1, 0], None), (None, None, [100.0, 200.0, 900.5, 1100.0]),
               ([[5.0, 6.0]], [1], [1.0, 2.0, 3.0, 4.0])]
    want_tokens = []
    for pts, labels, box in prompts:
        cases["tokens"].append({"points": pts, "labels": labels, "box": box, "height": 1200, "width": 1800})
        want_tokens.append(prompt_tokens(pts, labels, box, (1200, 1800)))
    # self-check comparator on a real expectation (this test's own numbers, same format as the bundle's)
    low = rng.normal(0, 3, (4, 256, 256)).astype(np.float32)
    low.tofile(tmp_path / "sc_low.bin")
    web_exporter.selfcheck_image().tofile(tmp_path / "sc_image.bin")
    s = web_exporter.SELFCHECK_STRIDE
    cases["selfcheck"] = {"iou": [0.5, 0.6, 0.7, 0.8], "low": "sc_low.bin", "image": "sc_image.bin",
                          "expected": {
        "image": {"width": 1024, "height": 768}, "iou_predictions": [0.5, 0.6, 0.7, 0.8], "sample_stride": s,
        "low_res_samples": low[:, ::s, ::s].ravel().tolist(),
        "low_res_sign_b64": base64.b64encode(np.packbits((low > 0).ravel())).decode(),
        "tolerance": web_exporter.SELFCHECK_TOLERANCE["fp32"]}}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    run = subprocess.run([node, str(Path(__file__).with_name("web_transforms_check.mjs")),
                          str(tmp_path / "transforms.mjs"), str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    for r in got["resize"]:  # byte-exact with PIL's bilinear resize
        assert r["got_len"] == r["want_len"] and r["diff_bytes"] == 0, r
    assert len(got["normalize"]) == 3 and all(r["diff"] == 0 and r["len"] == r["want_len"]
                                              for r in got["normalize"]), got["normalize"]
    for r in got["upscale"]:
        assert r["len"] == r["want_len"] and r["max_abs"] < 1e-4, r
        # the mask is the page's own logits > 0, and differs from Python's only where |logit| ~ 0
        assert r["mask_len"] == r["want_len"] and r["mask_self_diff"] == 0 and r["mask_diff_margin"] < 1e-4, r
    for g, (coords, labels) in zip(got["tokens"], want_tokens):
        np.testing.assert_array_equal(np.float32(g["coords"]), coords.ravel())
        np.testing.assert_array_equal(np.float32(g["labels"]), labels)
    assert got["selfcheck"] == {"same": True, "flipped": False, "nan": False, "scores": False,
                                "image_diff": 0}


# -- export + parity in headless Chromium ----------------------------------------------------------

def test_web_bundle_exports_and_passes_its_gate_in_chromium(web_bundle):
    m = json.loads((web_bundle / "manifest.json").read_text())
    assert m["format"] == "web" and m["precision"] == "fp32"
    ort = m["notes"]["onnxruntime_web"]
    assert ort["version"] == web_exporter.ORT_WEB_VERSION
    assert ort["integrity"] == web_exporter.ORT_WEB_INTEGRITY
    listed = set(m["files"])
    assert {"encoder.onnx", "decoder.onnx", "selfcheck.json", *web_exporter.WEB_SOURCES} <= listed
    assert {f"ort/{n}" for n in web_exporter.ORT_FILES} <= listed
    assert all((web_bundle / f).is_file() for f in listed)
    p = m["parity"]
    assert p["passed"], p["failures"]
    # the format gate tightens logits; the IoU-head gate stays the (tighter) fp32 one
    assert p["gate"]["logits_max_abs"] == 2e-4
    assert p["gate"]["iou_pred_max_abs"] == parity.GATES["fp32"]["iou_pred_max_abs"]
    assert p["gate"]["mask_iou_min"] >= 0.999
    s = p["summary"]
    assert s["logits_max_abs"] <= 2e-4 and s["mask_iou_min"] >= 0.999
    assert s["iou_pred_max_abs"] <= p["gate"]["iou_pred_max_abs"]
    assert p["gate"]["preprocess_max_abs"] == 0.0 and s["preprocess_max_abs"] == 0.0  # bit-exact input
    assert len(p["images"]) == 3 and len(p["prompts"]) == 21


def test_a_resize_bug_fails_the_web_gate(web_bundle, tmp_path, loaded):
    """A consistent bundle (hashes updated) whose resize skips PIL's antialiasing: on random
    weights the outputs barely move, the exact pre-processing check fails it."""
    from mobilesam_runtime.manifest import sha256_file

    bundle = tmp_path / "web-fp32"
    shutil.copytree(web_bundle, bundle)
    src = (bundle / "transforms.js").read_text()
    buggy = src.replace("const filterscale = scale < 1.0 ? 1.0 : scale;", "const filterscale = 1.0;")
    assert buggy != src
    (bundle / "transforms.js").write_text(buggy)
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"]["transforms.js"].update(sha256=sha256_file(bundle / "transforms.js"),
                                       bytes=(bundle / "transforms.js").stat().st_size)
    (bundle / "manifest.json").write_text(json.dumps(m))
    # a photo that is downscaled (1800x1200 -> 1024): an upscaled one never reaches that branch
    photos = tmp_path / "photos"
    photos.mkdir()
    truck = resources.files("mobilesam_runtime") / "data" / "evaluation" / "truck.jpg"
    (photos / "truck.jpg").write_bytes(truck.read_bytes())
    report = parity.run_parity(bundle, loaded.model, images=photos)
    assert not report["passed"]
    assert [f for f in report["failures"] if f.startswith("preprocess_max_abs")], report["failures"]
    assert report["summary"]["mask_iou_min"] >= 0.999  # what mask IoU alone would have let through


def test_page_uses_threads_only_when_cross_origin_isolated(web_bundle, page_predictor):
    from mobilesam_export.webdriver import WebPredictor

    info = page_predictor.info
    assert info["crossOriginIsolated"] is True and info["ep"] == "wasm"
    cores = page_predictor.web.evaluate("() => navigator.hardwareConcurrency")
    assert info["threads"] == info["threadsRequested"] == min(4, cores)
    with WebPredictor(web_bundle, isolate=False, self_check=True) as p:
        assert p.info["crossOriginIsolated"] is False and p.info["threads"] == 1
        assert p.info["selfCheck"]["passed"], p.info["selfCheck"]  # the WebGPU gate's check, run on WASM


def test_tampered_graph_is_refused_by_the_page(web_bundle, tmp_path):
    from mobilesam_export.webdriver import WebPage

    bundle = tmp_path / "web-fp32"
    shutil.copytree(web_bundle, bundle)
    with open(bundle / "decoder.onnx", "r+b") as f:  # a half-updated deployment
        f.seek(-100, 2)
        f.write(b"\x00" * 8)
    web = WebPage(bundle)
    try:
        err = web.evaluate("async () => { try { await mobilesam.load('./'); return null; } "
                           "catch (e) { return `${e.name}: ${e.message}`; } }")
    finally:
        web.close()
    assert err is not None and "decoder.onnx does not match manifest.json" in err, err


@pytest.mark.parametrize("call, pattern", [
    ("pred.setImage(null)", r"TypeError: setImage\(imageData\): expected an ImageData"),
    ("pred.setImage({width: 2, height: 2, data: new Uint8ClampedArray(12)})",
     r"RangeError: .*RGBA 2x2 image has 16"),
    ("pred.setImage({width: 0, height: 2, data: new Uint8ClampedArray(0)})", r"setImage\(imageData\)"),
])
def test_bad_images_throw_clear_errors(page_predictor, call, pattern):
    import re

    err = page_predictor.web.evaluate(f"async () => {{ try {{ await {call}; return null; }} "
                                      f"catch (e) {{ return `${{e.name}}: ${{e.message}}`; }} }}")
    assert err is not None and re.search(pattern, err), err


def test_predict_before_set_image_throws(page_predictor):
    err = page_predictor.web.evaluate("""async () => {
        const p = await mobilesam.load('./');
        try { await p.predict({points: [[10, 10]], labels: [1]}); return null; }
        catch (e) { return `${e.name}: ${e.message}`; } finally { await p.dispose(); } }""")
    assert err is not None and "no image is set: call setImage(imageData) first" in err, err


@pytest.mark.parametrize("prompt, pattern", [
    ("{}", r"needs at least one point or a box"),
    ("{points: [[2000, 10]], labels: [1]}",
     r"RangeError: predict: point 0 \(2000, 10\) is outside the 1800x1200"),
    ("{points: [[10, -1]], labels: [1]}", r"outside the 1800x1200 image"),
    ("{points: [[10, 10]]}", r"labels must be given with points"),
    ("{points: [[10, 10], [20, 20]], labels: [1]}", r"1 labels for 2 points"),
    ("{points: [[10, 10]], labels: [5]}", r"labels\[0\] must be 1 \(foreground\) or 0"),
    ("{points: [[10, NaN]], labels: [1]}", r"finite numbers"),
    ("{points: [10, 10], labels: [1, 1]}", r"must be an \[x, y\] pair"),
    ("{box: [500, 500, 100, 100]}", r"x1 <= x2 and y1 <= y2"),
    ("{box: [0, 0, 100]}", r"box must be \[x1, y1, x2, y2\]"),
    ("{box: [0, 0, 100, 1300]}", r"box bottom-right .* outside"),
    ("{box: [0, 0, 10, 10], multimask: 'yes'}", r"multimask must be true or false"),
    ("{box: [0, 0, 10, 10], maskInput: new Float32Array(5)}",
     r"maskInput must be a Float32Array\(256\*256\)"),
    ("{point: [[1, 1]], label: [1]}", r"unknown option point"),
    ("null", r"expected an object"),
])
def test_bad_prompts_throw_clear_errors(page_predictor, photos, prompt, pattern):
    import re

    if page_predictor._size != (1200, 1800):
        page_predictor.set_image(photos["truck"])
    err = page_predictor.web.evaluate(f"async () => {{ try {{ await pred.predict({prompt}); return null; }} "
                                      f"catch (e) {{ return `${{e.name}}: ${{e.message}}`; }} }}")
    assert err is not None and re.search(pattern, err), err


def test_good_prompts_after_bad_ones_still_work(page_predictor, photos):
    if page_predictor._size != (1200, 1800):
        page_predictor.set_image(photos["truck"])
    masks, scores, low = page_predictor.predict(np.array([[900.0, 600.0]]), np.array([1]))
    assert masks.shape == (3, 1200, 1800) and masks.dtype == bool
    assert scores.shape == (3,) and low.shape == (3, 256, 256)
    masks, scores, low = page_predictor.predict(box=np.array([0, 0, 1800, 1200]), multimask_output=False)
    assert masks.shape == (1, 1200, 1800) and scores.shape == (1,) and low.shape == (1, 256, 256)


def test_demo_page_segments_on_click(web_bundle, tmp_path):
    from mobilesam_export.webdriver import demo_screenshot

    image = resources.files("mobilesam_runtime") / "data" / "evaluation" / "truck.jpg"
    shown = demo_screenshot(web_bundle, str(image), tmp_path / "demo.png", clicks=((0.3, 0.3),),
                            box=(0.2, 0.45, 0.4, 0.75))
    assert shown["error"] == "" and "wasm" in shown["status"] and "RANDOM weights" in shown["status"]
    assert len(shown["buttons"]) == 3 and all("score" in b for b in shown["buttons"])
    assert "encoder" in shown["times"] and "decoder" in shown["times"]
    assert 0 < shown["masked_fraction"] < 1
    assert (tmp_path / "demo.png").stat().st_size > 10_000


# -- serve, npm --------------------------------------------------------------------------------------

def _fake_bundle(folder: Path) -> Path:
    folder.mkdir()
    for name, body in (("manifest.json", b"{}"), ("index.html", b"<!doctype html>"), ("a.mjs", b"export {}"),
                       ("mobilesam.js", b"export {}"), ("x.wasm", b"\0asm"), ("g.onnx", b"\0")):
        (folder / name).write_bytes(body)
    return folder


def test_serve_sends_isolation_headers_and_mime_types(tmp_path):
    server, url = serve.start_background(_fake_bundle(tmp_path / "b"))
    try:
        assert url.startswith("http://127.0.0.1:")
        for name, ctype in (("index.html", "text/html"), ("a.mjs", "text/javascript"),
                            ("mobilesam.js", "text/javascript"), ("x.wasm", "application/wasm"),
                            ("manifest.json", "application/json"), ("g.onnx", "application/octet-stream")):
            with urllib.request.urlopen(url + name) as r:
                assert r.headers["Content-Type"].startswith(ctype), (name, r.headers["Content-Type"])
                assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    finally:
        server.shutdown()
        server.server_close()


def test_serve_refuses_non_bundles_and_defaults_to_loopback(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        serve.make_server(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="not a web bundle"):
        serve.make_server(tmp_path)
    assert cli.main(["serve", str(tmp_path / "missing")]) == 2
    assert "not a bundle folder" in capsys.readouterr().err
    args = cli.build_parser().parse_args(["serve", "b"])
    assert args.host == "127.0.0.1" and args.port == 8000


def test_npm_missing_is_named_and_the_cache_avoids_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(web_exporter.shutil, "which", lambda name: None)
    with pytest.raises(web_exporter.ToolMissingError, match="needs npm .* apt-get install -y npm"):
        web_exporter.fetch_ort_web()
    fake = tmp_path / "cache" / "mobilesam-export" / "npm" / "onnxruntime-web-9.9.9.tgz"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not really a tarball")
    assert web_exporter.fetch_ort_web("9.9.9", web_exporter.integrity_of(fake)) == fake  # cached: no npm
    with pytest.raises(web_exporter.ToolMissingError):  # a cached file with the wrong integrity is not used
        web_exporter.fetch_ort_web("9.9.9", "sha512-other")
