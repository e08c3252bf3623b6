"""LiteRT (TFLite) backend on ai-edge-litert's Interpreter: no TensorFlow, no torch."""

from __future__ import annotations

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
        files = manifest["graphs"]
        self.threads = threads
        self.max_points = int(manifest["notes"]["num_slots"])
        self._enc = Interpreter(str(bundle_dir / files["encoder"]), num_threads=threads)
        self._dec = Interpreter(str(bundle_dir / files["decoder"]), num_threads=threads)
        self.encoder = self._enc.get_signature_runner(SIGNATURE)
        self.decoder = self._dec.get_signature_runner(SIGNATURE)

    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.encoder(image=image)["image_embeddings"].copy()

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        out = self.decoder(image_embeddings=image_embeddings, point_coords=point_coords,
                           point_labels=point_labels, mask_input=mask_input,
                           has_mask_input=has_mask_input)
        return out["iou_predictions"].copy(), out["low_res_masks"].copy()


Backend = LiteRtBackend
