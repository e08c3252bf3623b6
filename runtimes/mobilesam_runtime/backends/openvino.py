"""OpenVINO backend: CPU by default, any device OpenVINO sees (CPU, GPU, NPU, AUTO)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from .. import contract
from ..manifest import signatures
from . import check_signature, flag, loaded_roles, prompt_batch_limit

# f32 for parity; bf16 (the CPU plugin's default on AVX-512-BF16/AMX CPUs) or f16 for speed.
PRECISIONS = ("f32", "bf16", "f16")


class OpenVinoBackend:
    """Compiles encoder.xml / decoder.xml (and the split decoder, if the bundle has it and
    `split_decoder` is on) on `device`, the encoder at an explicit inference precision, the
    decoder graphs at f32.

    `cache_dir`: OpenVINO's model cache. Measured 2026-12-08 (2-core AVX-512 host, the 4 graphs
    of an fp32 bundle): compiling took 1.6-1.8 s, from a warm cache 0.5-0.6 s. A graph cached at
    f32 and loaded at bf16 runs bf16 (tests/test_openvino.py checks the outputs)."""

    max_points = None
    thread_safe = False  # one infer request per graph: the predictor serialises calls

    def __init__(self, bundle_dir: Path, manifest: dict, device: str = "CPU",
                 precision: str = "f32", threads: int | None = None,
                 split_decoder: bool | str = True, cache_dir: str | Path | None = None) -> None:
        core = ov.Core()
        if cache_dir:  # OpenVINO's model cache: compiled graphs reused by later loads
            core.set_property({"CACHE_DIR": str(cache_dir)})
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
        # The precision hint applies to the encoder (77.5 GFLOP); the decoder graphs (3.7 GFLOP a
        # prompt set) always compute in f32. Measured 2026-12-08 on a bf16 CPU (AMD EPYC,
        # AVX-512 BF16; random weights, 3 photos x 9 prompt types): bf16 in the whole decoder
        # alone: decoder-only mask IoU 0.965 and one changed mask pick; the split decoder's
        # LayerNorm of implicit tokens (terms that cancel) to 0.959; the gate is 0.99.
        decoder_config = {**config, "INFERENCE_PRECISION_HINT": "f32"} if config else config
        self.compiled = {role: core.compile_model(
            str(bundle_dir / files[role]), device, config if role == "encoder" else decoder_config)
            for role in loaded_roles(files, flag(split_decoder, "split_decoder"))}
        self.encoder, self.decoder = self.compiled["encoder"], self.compiled["decoder"]
        self.split_decoder = "decoder_prompts" in self.compiled
        for role, compiled in self.compiled.items():
            wanted = [t.name for t in sigs[role].inputs]  # a port may carry several names
            check_signature(bundle_dir, role, sigs[role], {
                next((n for n in wanted if n in i.get_names()), i.get_any_name()):
                    tuple(d.get_length() if d.is_static else None for d in i.get_partial_shape())
                for i in compiled.inputs})
        self.max_batch = prompt_batch_limit(sigs["decoder"])  # None; 1 for contract-1 bundles
        # what the device really runs: a CPU without bf16/fp16 units falls back to f32
        try:
            hint = self.encoder.get_property("INFERENCE_PRECISION_HINT")
            self.effective_precision = getattr(hint, "get_type_name", lambda: str(hint))()
        except RuntimeError:  # a device (or AUTO) that does not report it
            self.effective_precision = self.precision
        _warn_if_failed(manifest, self.precision, self.effective_precision)
        self._requests = {role: c.create_infer_request() for role, c in self.compiled.items()}
        self._enc_req, self._dec_req = self._requests["encoder"], self._requests["decoder"]

    def encode(self, image: np.ndarray) -> np.ndarray:
        res = self._enc_req.infer(contract.feeds(contract.ENCODER_INPUTS, image))
        return res["image_embeddings"].copy()

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        res = self._dec_req.infer(contract.feeds(contract.DECODER_INPUTS, image_embeddings,
                                                 point_coords, point_labels, mask_input,
                                                 has_mask_input))
        return tuple(res[name].copy() for name in contract.names(contract.DECODER_OUTPUTS))

    def decoder_state(self, image_embeddings: np.ndarray) -> tuple[np.ndarray, ...]:
        """The split decoder's image state (contract.DECODER_STATE), once per image."""
        res = self._requests["decoder_image"].infer(
            contract.feeds(contract.DECODER_IMAGE_INPUTS, image_embeddings))
        return tuple(res[name].copy() for name in contract.names(contract.DECODER_STATE))

    def decode_prompts(self, state: tuple[np.ndarray, ...], point_coords, point_labels):
        """decode() for prompts without a mask input, from `decoder_state`'s state."""
        res = self._requests["decoder_prompts"].infer(
            contract.feeds(contract.DECODER_PROMPTS_INPUTS, *state, point_coords, point_labels))
        return tuple(res[name].copy() for name in contract.names(contract.DECODER_OUTPUTS))


def _warn_if_failed(manifest: dict, precision: str, effective: str) -> None:
    """Loud, not silent: a runtime precision whose parity failed at export (or that ran as
    another precision there) is flagged when it is loaded."""
    import warnings

    if precision == "f32" or effective == "f32":
        return  # f32 is the bundle's own parity
    record = manifest.get("parity_runtime", {}).get(precision)
    if record is None:
        why = "was not parity-checked at export"
    elif record.get("effective_precision") != effective:
        why = (f"was parity-checked at export only as {record.get('effective_precision')} "
               f"(that machine could not run {precision})")
    elif not record.get("passed"):
        why = "FAILED its parity gate at export: " + "; ".join(record.get("failures", []))
    else:
        return
    warnings.warn(f"OpenVINO precision {precision} on this bundle {why}", RuntimeWarning,
                  stacklevel=3)


Backend = OpenVinoBackend
