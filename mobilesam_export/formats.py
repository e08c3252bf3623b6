"""Formats and their precisions, defined once. Plain Python with no imports beyond the standard
library, so the Makefile can validate FORMAT/QUANT and clean bundles before anything is installed:

    python3 mobilesam_export/formats.py check FORMAT [QUANT]   # exit 2 with a message if unknown
    python3 mobilesam_export/formats.py quant FORMAT [QUANT]   # the effective precision
    python3 mobilesam_export/formats.py clean OUT              # remove only bundles we made
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

# format -> (precisions, default precision)
PRECISIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "onnx": (("fp32", "fp16", "int8", "int8-static"), "fp32"),
    "openvino": (("fp32", "fp16", "int8", "int8-weights"), "fp32"),
    "coreml": (("fp16", "fp32", "int8", "palettize6", "palettize4"), "fp16"),
    "tflite": (("fp32", "fp16", "int8", "int8-static"), "fp32"),
    "web": (("fp32", "fp16", "int8"), "fp32"),  # the ONNX graphs + onnxruntime-web (exporters/web.py)
}
FORMATS = tuple(PRECISIONS)
TEMP_PATTERN = re.compile(r"^\.(?P<bundle>[a-z]+-[a-z0-9-]+)\.(tmp|old)-")


def quants(fmt: str) -> tuple[str, ...]:
    return PRECISIONS[fmt][0]


def default_quant(fmt: str) -> str:
    return PRECISIONS[fmt][1]


def check(fmt: str, quant: str | None = None) -> str:
    """The effective precision of `fmt`/`quant`; ValueError naming the choices otherwise."""
    if fmt not in PRECISIONS and fmt != "all":
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)} or all")
    if fmt == "all":
        return quant or ""
    if quant and quant not in quants(fmt):
        raise ValueError(f"{fmt} supports QUANT in {', '.join(quants(fmt))}; got {quant!r}")
    return quant or default_quant(fmt)


def is_our_bundle(folder: Path) -> bool:
    """A folder named <format>-<precision> whose manifest says it is that bundle."""
    try:
        m = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(m, dict) and m.get("format") in PRECISIONS
            and folder.name == f"{m.get('format')}-{m.get('precision')}")


def clean(out: Path) -> list[Path]:
    """Remove the bundles (and our leftover temp folders) directly inside `out`; nothing else."""
    removed = []
    if not out.is_dir():
        return removed
    for child in sorted(out.iterdir()):
        if child.is_symlink() or not child.is_dir():
            continue
        if is_our_bundle(child) or TEMP_PATTERN.match(child.name):
            shutil.rmtree(child)
            removed.append(child)
    if not any(out.iterdir()):
        out.rmdir()
    return removed


def main(argv: list[str]) -> int:
    try:
        if len(argv) >= 2 and argv[0] == "check":
            check(argv[1], argv[2] if len(argv) > 2 else None)
        elif len(argv) >= 2 and argv[0] == "quant":
            print(check(argv[1], argv[2] if len(argv) > 2 else None))
        elif len(argv) == 2 and argv[0] == "clean":
            for p in clean(Path(argv[1])):
                print(f"removed {p}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
