"""Web: the ONNX exporter's two graphs (and quantizers) plus onnxruntime-web, taken from the npm
registry at export time with the machine's `npm` (pinned version, integrity checked, cached), our
ES module `mobilesam.js`, its Web Worker and a demo `index.html`. No CDN at run time."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from mobilesam_runtime import contract, transforms

from .. import formats
from ..bundle import ExportOptions
from ..checkpoint import LoadedModel
from ..metadata import model_metadata
from . import onnx as onnx_exporter

FORMAT = "web"
QUANTS = formats.quants(FORMAT)
DEFAULT_QUANT = formats.default_quant(FORMAT)

ORT_WEB_VERSION = "1.30.0"  # `npm view onnxruntime-web versions`; bump with a green web parity run
ORT_WEB_INTEGRITY = ("sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7Qm"
                     "RMDs1SigqR4CXAfKYQ==")
# What the page loads from the package: the WASM build (CPU) and the WebGPU build (which also
# runs on WASM; loaded only where navigator.gpu exists). Source maps and other builds are left out.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
             "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs",
             "ort-wasm-simd-threaded.asyncify.wasm")
ORT_DIR = "ort"
WEB_SOURCES = ("mobilesam.js", "worker.js", "transforms.js", "bench.js", "index.html")
SELFCHECK = "selfcheck.json"
# Tolerances of the in-page self-check (known input, this bundle's graphs run by Python
# onnxruntime at export time) that decides whether WebGPU may be used. Wide enough for another
# device's float rounding, tight enough to catch the broken fp16 paths (NaN/garbage masks).
SELFCHECK_TOLERANCE = {
    "fp32": {"scores_max_abs": 0.01, "logits_max_abs": 0.05, "sign_agreement_min": 0.99},
    "fp16": {"scores_max_abs": 0.02, "logits_max_abs": 0.25, "sign_agreement_min": 0.98},
    "int8": {"scores_max_abs": 0.05, "logits_max_abs": 0.5, "sign_agreement_min": 0.95},
}
SELFCHECK_STRIDE = 8


class ToolMissingError(RuntimeError, FileNotFoundError):
    """A command-line tool an export needs (npm) is not installed."""


def cache_dir() -> Path:
    """~/.cache/mobilesam-export (XDG_CACHE_HOME respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mobilesam-export"


def integrity_of(path: Path) -> str:
    """npm's Subresource Integrity string (sha512-<base64>) of a file."""
    h = hashlib.sha512()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def fetch_ort_web(version: str = ORT_WEB_VERSION, integrity: str = ORT_WEB_INTEGRITY) -> Path:
    """The onnxruntime-web tarball from the cache, else `npm pack` (then cached); its
    integrity must equal the pinned one."""
    cached = cache_dir() / "npm" / f"onnxruntime-web-{version}.tgz"
    if cached.is_file() and integrity_of(cached) == integrity:
        return cached
    npm = shutil.which("npm")
    if npm is None:
        raise ToolMissingError(
            f"web export needs npm to fetch onnxruntime-web@{version} from the npm registry, and "
            f"npm is not installed (Debian: apt-get install -y npm).")
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".pack-") as tmp:
        run = subprocess.run([npm, "pack", f"onnxruntime-web@{version}", "--pack-destination", tmp,
                              "--silent"], capture_output=True, text=True, cwd=tmp)
        got = Path(tmp) / f"onnxruntime-web-{version}.tgz"
        if run.returncode != 0 or not got.is_file():
            raise RuntimeError(f"npm pack onnxruntime-web@{version} failed: "
                               f"{(run.stderr or run.stdout).strip()[-2000:]}")
        if integrity_of(got) != integrity:
            raise RuntimeError(f"onnxruntime-web@{version} from npm has integrity {integrity_of(got)}, "
                               f"not the pinned {integrity}: refusing it.")
        os.replace(got, cached)
    return cached


def extract_ort(tarball: Path, dest: Path) -> list[str]:
    """Copy ORT_FILES from the package's dist/ into `dest`; returns bundle-relative names."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for name in ORT_FILES:
            member = tar.getmember(f"package/dist/{name}")
            src = tar.extractfile(member)
            if src is None:
                raise RuntimeError(f"{tarball.name}: package/dist/{name} is not a file")
            with src, open(dest / name, "wb") as f:
                shutil.copyfileobj(src, f)
    return [f"{dest.name}/{n}" for n in ORT_FILES]


def copy_sources(out: Path) -> list[str]:
    """Our JS/HTML sources (package data) into the bundle root."""
    pkg = resources.files("mobilesam_export") / "web"
    for name in WEB_SOURCES:
        (out / name).write_bytes((pkg / name).read_bytes())
    return list(WEB_SOURCES)


def selfcheck_image(width: int = 1024, height: int = 768) -> np.ndarray:
    """The known self-check image (same formula as transforms.js selfCheckImage), HxWx3 uint8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    return np.stack([(x * 3 + y * 5 + c * 85 + ((x * y) >> 6)) & 255 for c in range(3)],
                    -1).astype(np.uint8)


def write_selfcheck(out: Path, graphs: dict[str, str], quant: str) -> None:
    """Expected decoder outputs of this bundle's graphs on the known input (Python onnxruntime)."""
    import json

    import onnxruntime as ort

    image = selfcheck_image()
    x = transforms.normalize_and_pad(transforms.resize_image(image))
    enc = ort.InferenceSession(str(out / graphs["encoder"]), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(out / graphs["decoder"]), providers=["CPUExecutionProvider"])
    emb = enc.run(None, {"image": x})[0]
    point = (512.0, 384.0)
    coords = np.array([[point, (0.0, 0.0)]], np.float32)
    labels = np.array([[contract.Label.FOREGROUND, contract.Label.PADDING]], np.float32)
    low = contract.LOW_RES_SIZE
    iou, masks = dec.run(["iou_predictions", "low_res_masks"], {
        "image_embeddings": emb, "point_coords": coords, "point_labels": labels,
        "mask_input": np.zeros((1, 1, low, low), np.float32), "has_mask_input": np.zeros(1, np.float32)})
    family = "int8" if quant.startswith("int8") else quant
    doc = {
        "about": "decoder outputs of this bundle on a known input, from Python onnxruntime at export; "
                 "the page compares before it trusts WebGPU (transforms.js compareSelfCheck)",
        "image": {"width": int(image.shape[1]), "height": int(image.shape[0]),
                  "formula": "(x*3 + y*5 + c*85 + ((x*y) >> 6)) & 255"},
        "point": list(point),
        "iou_predictions": [float(v) for v in iou[0]],
        "sample_stride": SELFCHECK_STRIDE,
        "low_res_samples": [round(float(v), 6)
                            for v in masks[0, :, ::SELFCHECK_STRIDE, ::SELFCHECK_STRIDE].ravel()],
        "low_res_sign_b64": base64.b64encode(np.packbits((masks[0] > 0).ravel())).decode(),
        "tolerance": SELFCHECK_TOLERANCE[family],
    }
    (out / SELFCHECK).write_text(json.dumps(doc))


def export(loaded: LoadedModel, out: Path, quant: str, options: ExportOptions) -> dict:
    """The ONNX graphs of `quant`, onnxruntime-web, our JS and the demo page into `out`."""
    # the page runs the two contract graphs only (mobilesam.js)
    options = dataclasses.replace(options, official_decoder=False, split_decoder=False)
    result = onnx_exporter.export(loaded, out, quant, options)
    graphs = result["graphs"]
    for role, name in graphs.items():
        onnx_exporter.set_metadata(out / name, model_metadata(loaded, FORMAT, quant, role))
    tarball = fetch_ort_web()
    aux = extract_ort(tarball, out / ORT_DIR) + copy_sources(out)
    write_selfcheck(out, graphs, quant)
    aux.append(SELFCHECK)
    notes = dict(result["notes"])
    notes["onnxruntime_web"] = {"version": ORT_WEB_VERSION, "integrity": integrity_of(tarball),
                                "source": f"npm pack onnxruntime-web@{ORT_WEB_VERSION}",
                                "license": "MIT", "files": [f"{ORT_DIR}/{n}" for n in ORT_FILES]}
    return {"graphs": graphs, "aux_files": aux, "notes": notes, "signatures": result["signatures"]}


CANNOT_RUN_REASON = ("web parity needs headless Chromium and playwright: apt-get install -y chromium; "
                     "pip install playwright (never a browser download)")


def CAN_RUN_HERE() -> bool:  # noqa: N802 (the exporters' protocol name)
    from ..webdriver import chromium_available

    return chromium_available()
