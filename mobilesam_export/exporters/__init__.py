"""One module per format. Each defines FORMAT, QUANTS, DEFAULT_QUANT and
`export(loaded, out_dir, quant, metadata, options) -> {"graphs": {...}, "notes": {...}}`."""

from __future__ import annotations

import importlib
from types import ModuleType

FORMATS = ("onnx", "openvino", "coreml", "tflite")

# int8 bundles keep the prompt decoder in float (fp32) in every format. Measured on 3 photos x 7
# prompt types: an int8 decoder alone drops mask IoU to 0.90 (OpenVINO PTQ) and 0.95 (weights
# only), for a few ms saved beside a ~0.3 s encoder. Flip only with a parity run to back it.
INT8_DECODER = False


def get(fmt: str) -> ModuleType:
    """The exporter module of a format, with a clear error for unknown names."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return importlib.import_module(f"{__name__}.{fmt}")
