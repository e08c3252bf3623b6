"""LiteRT (TFLite) backend on ai-edge-litert's Interpreter: no TensorFlow, no torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from .. import contract
from ..manifest import BundleError, signatures
from . import check_signature

SIGNATURE = "serving_default"


class LiteRtBackend:
    """Runs encoder.tflite / decoder.tflite (XNNPACK on CPU). The decoder has fixed prompt slots;
    the predictor fills unused ones with Label.UNUSED, which the graph masks out."""

    thread_safe = False  # an Interpreter is not: the predictor serialises calls

    def __init__(self, bundle_dir: Path, manifest: dict, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        threads = threads or os.cpu_count() or 1  # explicit: the interpreter default may be 1
        files, sigs = manifest["graphs"], signatures(manifest)
        slots = contract.prompt_points(sigs["decoder"])
        if not isinstance(slots, int):
            raise BundleError(f"{bundle_dir}: a TFLite decoder has fixed prompt slots; the "
                              f"manifest says {slots}")
        self.threads = threads
        self.max_points = slots
        self._enc = Interpreter(str(bundle_dir / files["encoder"]), num_threads=threads)
        self._dec = Interpreter(str(bundle_dir / files["decoder"]), num_threads=threads)
        self.encoder = self._enc.get_signature_runner(SIGNATURE)
        self.decoder = self._dec.get_signature_runner(SIGNATURE)
        for role, runner in (("encoder", self.encoder), ("decoder", self.decoder)):
            check_signature(bundle_dir, role, sigs[role], {
                name: tuple(int(d) if d >= 0 else None
                            for d in detail.get("shape_signature", detail["shape"]))
                for name, detail in runner.get_input_details().items()})

    @staticmethod
    def _run(runner, **inputs) -> dict[str, np.ndarray]:
        """Run a signature with float32 I/O; a fully int8 model's quantized inputs/outputs are
        (de)quantized with the scale/zero-point the file carries."""
        feeds = {}
        for name, detail in runner.get_input_details().items():
            x = inputs[name]
            if detail["dtype"] != np.float32:
                scale, zero = detail["quantization"]
                info = np.iinfo(detail["dtype"])
                x = np.clip(np.rint(x / scale + zero), info.min, info.max).astype(detail["dtype"])
            feeds[name] = x
        out = runner(**feeds)
        result = {}
        for name, detail in runner.get_output_details().items():
            y = out[name]
            if detail["dtype"] != np.float32:
                scale, zero = detail["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            result[name] = np.array(y, np.float32)
        return result

    def encode(self, image: np.ndarray) -> np.ndarray:
        return self._run(self.encoder, **contract.feeds(contract.ENCODER_INPUTS, image))[
            "image_embeddings"]

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        out = self._run(self.decoder, **contract.feeds(
            contract.DECODER_INPUTS, image_embeddings, point_coords, point_labels, mask_input,
            has_mask_input))
        return tuple(out[name] for name in contract.names(contract.DECODER_OUTPUTS))


Backend = LiteRtBackend
