"""Packaging: each format extra covers what that format's export imports; the runtime
distribution depends on numpy + Pillow only and never imports torch or the exporter; the photos
ship inside the package; nothing refers to the workspace folder beside the clone.
Cheap: reads files, builds no venv."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

from mobilesam_export import formats
from mobilesam_runtime import sample_images

ROOT = Path(__file__).resolve().parent.parent
EXPORTER = ROOT / "mobilesam_export"
RUNTIME = ROOT / "runtimes" / "mobilesam_runtime"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_PYPROJECT = tomllib.loads((ROOT / "runtimes" / "pyproject.toml").read_text())
# import name -> distribution, for what packages_distributions() cannot tell (not installed)
KNOWN = {"PIL": "pillow", "ai_edge_litert": "ai-edge-litert", "ai_edge_quantizer": "ai-edge-quantizer",
         "litert_torch": "litert-torch", "coremltools": "coremltools", "yaml": "pyyaml"}


def _dist(req: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", req, maxsplit=1)[0].lower().replace("_", "-")


def _imports(path: Path, seen: set[Path]) -> set[str]:
    """Top-level third-party modules imported by `path` and the package modules it imports."""
    if path in seen or not path.is_file():
        return set()
    seen.add(path)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: follow it inside the package
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                parts = (node.module or "").split(".") if node.module else []
                target = base.joinpath(*parts)
                for cand in ([target.with_suffix(".py"), target / "__init__.py"]
                             + [target / f"{a.name}.py" for a in node.names]):
                    out |= _imports(cand, seen)
            elif node.module:
                out.add(node.module.split(".")[0])
    return out


def _third_party(mods: set[str]) -> set[str]:
    own = {"mobilesam_export", "mobilesam_runtime", "benchmarks"}
    return {m for m in mods if m not in own and m not in sys.stdlib_module_names}


def _to_dist(module: str) -> str:
    dists = metadata.packages_distributions().get(module)
    return (KNOWN.get(module) or (dists[0] if dists else module)).lower().replace("_", "-")


def _extra(fmt: str) -> list[str]:
    """An extra's requirements, with self-references (mobilesam-export[onnx]) expanded."""
    out = []
    for r in PYPROJECT["project"]["optional-dependencies"][fmt]:
        m = re.match(r"mobilesam-export\[([a-z,]+)\]", r)
        out += [x for e in m.group(1).split(",") for x in _extra(e)] if m else [r]
    return out


def _exporter_deps(fmt: str) -> set[str]:
    base = [_dist(r) for r in ("mobilesam-runtime", "numpy", "pillow", "tqdm")]  # setup.py
    runtime = [_dist(r) for r in RUNTIME_PYPROJECT["project"]["dependencies"]]
    extra = [_dist(r) for r in _extra(fmt)]
    return set(base + runtime + extra)


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_format_extra_covers_its_exporter_imports(fmt):
    # the headless-browser driver is the web format's own runtime: followed only for web
    seen = set() if fmt == "web" else {EXPORTER / "webdriver.py"}
    mods = _third_party(_imports(EXPORTER / "exporters" / f"{fmt}.py", seen))
    mods |= _third_party(_imports(EXPORTER / "cli.py", seen))  # the command that runs it
    mods |= _third_party(_imports(EXPORTER / "parity.py", seen))
    runtime_lib = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "ai-edge-litert",
                   "coreml": "coremltools", "web": "playwright"}[fmt]
    needed = {_to_dist(m) for m in mods} | {runtime_lib}
    missing = needed - _exporter_deps(fmt)
    assert not missing, f"[{fmt}] extra lacks {sorted(missing)} (imported by its export path)"


def test_runtime_distribution_is_light():
    deps = {_dist(r) for r in RUNTIME_PYPROJECT["project"]["dependencies"]}
    assert deps == {"numpy", "pillow"}
    extras = RUNTIME_PYPROJECT["project"]["optional-dependencies"]
    assert {k: [_dist(r) for r in v] for k, v in extras.items() if k != "plot"} == {
        "onnx": ["onnxruntime"], "openvino": ["openvino"], "tflite": ["ai-edge-litert"],
        "coreml": ["coremltools"], "amg": ["opencv-python-headless", "pycocotools"]}
    for path in RUNTIME.rglob("*.py"):
        mods = _imports(path, set())
        assert not mods & {"torch", "mobilesam_export", "nncf"}, path  # onnx: guarded, bench only


def test_torch_is_not_a_base_dependency():
    assert "dependencies" in PYPROJECT["project"]["dynamic"]
    setup_py = (ROOT / "setup.py").read_text()
    assert "torch" not in setup_py
    for fmt in formats.FORMATS:
        assert "torch==2.13.0" in _extra(fmt)


def test_packaged_photos_are_disjoint_real_images():
    cal, ev = sample_images.names("calibration"), sample_images.names("evaluation")
    assert len(cal) >= 3 and len(ev) >= 3 and not set(cal) & set(ev)
    total = sum(p.stat().st_size for p in (RUNTIME / "data").rglob("*.jpg"))
    assert total < 1.5e6, total
    for name, image in sample_images.load("evaluation"):
        assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 10, name
    assert (RUNTIME / "data" / "README.md").read_text().count("|") > 20  # provenance table
    package_data = RUNTIME_PYPROJECT["tool"]["setuptools"]["package-data"]["mobilesam_runtime"]
    assert "data/evaluation/*" in package_data and "data/calibration/*" in package_data


def test_no_code_path_refers_to_the_workspace():
    pattern = re.compile(r"\.\./shared|[\"']shared[\"']\s*/")
    for path in [*ROOT.glob("*/**/*.py"), ROOT / "Makefile", ROOT / ".ci" / "run"]:
        if ".venv" in path.parts or "upstream_shims" in path.parts or path == Path(__file__):
            continue
        assert not pattern.search(path.read_text()), path


def test_constraints_pin_the_converters():
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for name in ("torch", "onnx", "onnxsim", "onnxruntime", "openvino", "nncf", "coremltools",
                 "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "mobilesam-mirror"):
        assert name in pins, name
    assert pins["torch"] == "2.13.0"


def test_one_version_string():
    import mobilesam_export
    import mobilesam_runtime

    assert metadata.version("mobilesam-export") == mobilesam_export.__version__
    assert metadata.version("mobilesam-runtime") == mobilesam_runtime.__version__
    assert PYPROJECT["project"]["dynamic"] and "version" not in PYPROJECT["project"]
