"""ONNX Runtime backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort


class OnnxBackend:
    """Runs encoder.onnx / decoder.onnx with ONNX Runtime (CPU by default)."""

    max_points = None

    def __init__(self, bundle_dir: Path, manifest: dict, threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        providers = providers or ["CPUExecutionProvider"]
        files = manifest["graphs"]
        self.encoder = ort.InferenceSession(str(bundle_dir / files["encoder"]), opts,
                                            providers=providers)
        self.decoder = ort.InferenceSession(str(bundle_dir / files["decoder"]), opts,
                                            providers=providers)
        self._dec_inputs = [i.name for i in self.decoder.get_inputs()]

    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.encoder.run(["image_embeddings"], {"image": image})[0]

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        feeds = {"image_embeddings": image_embeddings, "point_coords": point_coords,
                 "point_labels": point_labels, "mask_input": mask_input,
                 "has_mask_input": has_mask_input}
        iou, low = self.decoder.run(["iou_predictions", "low_res_masks"],
                                    {k: feeds[k] for k in self._dec_inputs})
        return iou, low


Backend = OnnxBackend
