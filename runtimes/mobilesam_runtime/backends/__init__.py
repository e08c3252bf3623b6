"""One module per format, each importing only its own runtime library (loaded lazily)."""

from __future__ import annotations

import importlib
from types import ModuleType

# format -> (backend module, the runtime library it imports, the extra that installs it)
BACKENDS = {
    "onnx": ("mobilesam_runtime.backends.onnx", "onnxruntime", "onnx"),
    "openvino": ("mobilesam_runtime.backends.openvino", "openvino", "openvino"),
    "coreml": ("mobilesam_runtime.backends.coreml", "coremltools", "coreml"),
    "tflite": ("mobilesam_runtime.backends.tflite", "ai_edge_litert", "tflite"),
}


class MissingRuntimeError(ImportError):
    """The runtime library of a bundle's format is not installed; the message says how."""


def import_backend(fmt: str) -> ModuleType:
    """The backend module of `fmt`; a missing runtime library names the exact install command."""
    module, library, extra = BACKENDS[fmt]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != library:
            raise
        raise MissingRuntimeError(
            f"{fmt} bundles need {library}, which is not installed: "
            f'pip install "mobilesam-runtime[{extra}]"') from e


def check_signature(bundle_dir, role: str, sig, actual: dict[str, tuple]) -> None:
    """BundleError unless a loaded graph's input shapes are its manifest signature's."""
    from ..contract import signature_mismatches
    from ..manifest import BundleError

    problems = signature_mismatches(sig, actual)
    if problems:
        raise BundleError(f"{bundle_dir}: the {role} graph does not match the manifest's "
                          f"signature: {'; '.join(problems)}")


def prompt_batch_limit(decoder_sig) -> int | None:
    """How many prompt sets one decoder call takes: the signature's fixed B, its Dim's upper
    bound, or None (unbounded)."""
    from ..contract import Dim, prompt_batch

    b = prompt_batch(decoder_sig)
    return b.max if isinstance(b, Dim) else b


def loaded_roles(graphs: dict, split_decoder: bool = True) -> list[str]:
    """The graphs a predictor runs: encoder, decoder and, when the bundle has it and
    `split_decoder` is on, the split decoder (contract.SPLIT_DECODER_ROLES); SAM's official
    decoder is for other clients."""
    from ..contract import REQUIRED_ROLES, SPLIT_DECODER_ROLES

    roles = REQUIRED_ROLES + (SPLIT_DECODER_ROLES if split_decoder else ())
    return [r for r in roles if r in graphs]


def flag(value: bool | str, name: str) -> bool:
    """A boolean backend option, also as the strings a command line passes (1/0, true/false)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")
