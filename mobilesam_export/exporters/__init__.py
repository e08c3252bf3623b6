"""One module per format. Each defines FORMAT, QUANTS, DEFAULT_QUANT and
`export(loaded, out_dir, quant, metadata, options) -> {"graphs": {...}, "notes": {...}}`."""

from __future__ import annotations

import importlib
from types import ModuleType

FORMATS = ("onnx", "openvino", "coreml", "tflite")


def get(fmt: str) -> ModuleType:
    """The exporter module of a format, with a clear error for unknown names."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return importlib.import_module(f"{__name__}.{fmt}")
