"""Only for the one dependency pyproject.toml cannot express: mobilesam-runtime from ./runtimes
(a relative path), so `pip install ".[onnx]"` works from a clone with nothing else."""

from pathlib import Path

from setuptools import setup

RUNTIME = Path(__file__).resolve().parent / "runtimes"

setup(install_requires=[f"mobilesam-runtime @ {RUNTIME.as_uri()}", "numpy>=1.24,<2.4",
                        "pillow>=10", "tqdm>=4.66"])
