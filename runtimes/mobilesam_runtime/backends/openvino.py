"""OpenVINO backend: CPU by default, any device OpenVINO sees (CPU, GPU, NPU, AUTO)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from .. import contract
from ..manifest import signatures
from . import check_signature, prompt_batch_limit

# f32 for parity; bf16 (the CPU plugin's default on AVX-512-BF16/AMX CPUs) or f16 for speed.
PRECISIONS = ("f32", "bf16", "f16")


class OpenVinoBackend:
    """Compiles encoder.xml / decoder.xml on `device` with an explicit inference precision."""

    max_points = None
    thread_safe = False  # one infer request per graph: the predictor serialises calls

    def __init__(self, bundle_dir: Path, manifest: dict, device: str = "CPU",
                 precision: str = "f32", threads: int | None = None) -> None:
        core = ov.Core()
        available = core.available_devices
        base = device.split(":")[0].split(".")[0]
        if base not in ("AUTO", "MULTI", "HETERO") and not any(d.startswith(base) for d in available):
            raise ValueError(f"OpenVINO device {device!r} is not available here; available: "
                             f"{', '.join(available) or 'none'} (or AUTO)")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        config = {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.device, self.precision = device, precision
        if base == "AUTO":  # AUTO picks the device and its precision: record that, not a hint
            config, self.precision = {}, "device default (AUTO)"
        files, sigs = manifest["graphs"], signatures(manifest)
        self.encoder = core.compile_model(str(bundle_dir / files["encoder"]), device, config)
        self.decoder = core.compile_model(str(bundle_dir / files["decoder"]), device, config)
        for role, compiled in (("encoder", self.encoder), ("decoder", self.decoder)):
            wanted = [t.name for t in sigs[role].inputs]  # a port may carry several names
            check_signature(bundle_dir, role, sigs[role], {
                next((n for n in wanted if n in i.get_names()), i.get_any_name()):
                    tuple(d.get_length() if d.is_static else None for d in i.get_partial_shape())
                for i in compiled.inputs})
        self.max_batch = prompt_batch_limit(sigs["decoder"])  # None; 1 for contract-1 bundles
        self._enc_req = self.encoder.create_infer_request()
        self._dec_req = self.decoder.create_infer_request()

    def encode(self, image: np.ndarray) -> np.ndarray:
        res = self._enc_req.infer(contract.feeds(contract.ENCODER_INPUTS, image))
        return res["image_embeddings"].copy()

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        res = self._dec_req.infer(contract.feeds(contract.DECODER_INPUTS, image_embeddings,
                                                 point_coords, point_labels, mask_input,
                                                 has_mask_input))
        return tuple(res[name].copy() for name in contract.names(contract.DECODER_OUTPUTS))


Backend = OpenVinoBackend
