"""One module per format. Each defines FORMAT, QUANTS, DEFAULT_QUANT (from `formats`) and
`export(loaded, out_dir, quant, options) -> {"graphs": {...}, "signatures": {...}, "aux_files": [...],
"notes": {...}}` (`signatures`: the typed graph signatures the runtimes read, see
`contract.graph_signature`; `notes`: free-form, for people); a format that cannot run here also
defines CAN_RUN_HERE() and CANNOT_RUN_REASON."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..formats import FORMATS

# int8 bundles keep the prompt decoder float in every format (fp32; CoreML fp16). Measured on 3 photos x 7
# prompt types: an int8 decoder alone drops mask IoU to 0.90 (OpenVINO PTQ) and 0.95 (weights
# only), for a few ms saved beside a ~0.3 s encoder. Flip only with a parity run to back it.
INT8_DECODER = False
FLOAT_PRECISIONS = ("fp32", "fp16")


def compresses(role: str, quant: str) -> bool:
    """Whether an int8/palettized `quant` is applied to graph `role`: always the encoder, the
    decoder only with INT8_DECODER."""
    return quant not in FLOAT_PRECISIONS and (role == "encoder" or INT8_DECODER)


def decoder_precision(quant: str, float_decoder: str = "fp32") -> str:
    """The decoder's precision in a `quant` bundle (`float_decoder` where int8 keeps it float)."""
    return quant if quant in FLOAT_PRECISIONS or INT8_DECODER else float_decoder


def get(fmt: str) -> ModuleType:
    """The exporter module of a format, with a clear error for unknown names."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return importlib.import_module(f"{__name__}.{fmt}")


def signatures_json(sigs: dict) -> dict:
    """{role: GraphSignature} -> the manifest's `signatures`."""
    return {role: sig.to_json() for role, sig in sigs.items()}
