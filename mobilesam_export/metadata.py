"""What every model file and manifest says about itself: tool versions, weights, contract."""

from __future__ import annotations

import json
import platform
from importlib import metadata as importlib_metadata

from mobilesam_runtime import contract

from .checkpoint import LoadedModel

TOOLS = ("mobilesam-export", "torch", "numpy", "onnx", "onnxruntime", "onnxsim", "openvino",
         "nncf", "coremltools", "litert-torch", "ai-edge-litert", "ai-edge-quantizer")


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools that matter for reproducing an export."""
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def model_metadata(loaded: LoadedModel, fmt: str, quant: str, role: str) -> dict[str, str]:
    """String key/values stored inside each model file (ONNX metadata_props, CoreML
    user_defined_metadata, OpenVINO rt_info; TFLite files carry none, the manifest does). The
    contract is the one of that graph: SAM's official interface for `decoder_official`."""
    w = loaded.provenance()
    return {
        "mobilesam_export.role": role,
        "mobilesam_export.format": fmt,
        "mobilesam_export.precision": quant,
        "mobilesam_export.checkpoint_sha256": w["sha256"] or "none",
        "mobilesam_export.random_weights": str(w["random_weights"]).lower(),
        "mobilesam_export.contract": json.dumps(
            contract.describe(official_decoder=role == "decoder_official")),
        "mobilesam_export.versions": json.dumps(tool_versions()),
        **({"mobilesam_export.warning": w["warning"]} if w["random_weights"] else {}),
    }
