"""LiteRT (TFLite) backend on ai-edge-litert's Interpreter: no TensorFlow, no torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

SIGNATURE = "serving_default"


class LiteRtBackend:
    """Runs encoder.tflite / decoder.tflite (XNNPACK on CPU). The decoder has fixed prompt slots;
    the predictor fills unused ones with Label.UNUSED, which the graph masks out."""

    def __init__(self, bundle_dir: Path, manifest: dict, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        threads = threads or os.cpu_count() or 1  # explicit: the interpreter default may be 1
        files = manifest["graphs"]
        self.threads = threads
        self.max_points = int(manifest["notes"]["num_slots"])
        self._enc = Interpreter(str(bundle_dir / files["encoder"]), num_threads=threads)
        self._dec = Interpreter(str(bundle_dir / files["decoder"]), num_threads=threads)
        self.encoder = self._enc.get_signature_runner(SIGNATURE)
        self.decoder = self._dec.get_signature_runner(SIGNATURE)

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
        return self._run(self.encoder, image=image)["image_embeddings"]

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        out = self._run(self.decoder, image_embeddings=image_embeddings, point_coords=point_coords,
                        point_labels=point_labels, mask_input=mask_input,
                        has_mask_input=has_mask_input)
        return out["iou_predictions"], out["low_res_masks"]


Backend = LiteRtBackend
