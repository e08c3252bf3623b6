"""Core ML backend over coremltools' MLModel.predict — macOS only.

Core ML's runtime is part of macOS/iOS; coremltools on Linux can build and inspect models but
not run them, so loading a CoreML bundle elsewhere fails here with that explanation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import contract
from ..manifest import BundleError, signatures
from . import prompt_batch_limit

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


class CoreMLBackend:
    """Runs encoder.mlpackage / decoder.mlpackage with the chosen compute units."""

    max_points = None  # dynamic 1..point_limit (RangeDim); decode() refuses more
    max_batch = 1  # prompt sets per decoder call (the RangeDim's upper bound; 1 for old bundles)
    thread_safe = False

    def __init__(self, bundle_dir: Path, manifest: dict, compute_units: str = "ALL") -> None:
        if sys.platform != "darwin":
            raise BundleError(
                f"{bundle_dir} is a Core ML bundle: Core ML prediction runs only on macOS/iOS "
                f"(coremltools cannot execute models on {sys.platform}). Use an onnx, openvino or "
                f"tflite bundle here, or run this one on a Mac.")
        import coremltools as ct

        if compute_units not in COMPUTE_UNITS:
            raise ValueError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)}")
        units = getattr(ct.ComputeUnit, compute_units)
        files, sigs = manifest["graphs"], signatures(manifest)
        points = contract.prompt_points(sigs["decoder"])
        if not isinstance(points, contract.Dim) or points.max is None:
            raise BundleError(f"{bundle_dir}: a Core ML decoder takes a bounded point range; the "
                              f"manifest says {points}")
        self.image_input = sigs["encoder"].input("image").kind == "image"
        self.point_limit = points.max
        self.max_batch = prompt_batch_limit(sigs["decoder"])
        self.encoder = ct.models.MLModel(str(bundle_dir / files["encoder"]), compute_units=units)
        self.decoder = ct.models.MLModel(str(bundle_dir / files["decoder"]), compute_units=units)

    def encode(self, image: np.ndarray) -> np.ndarray:
        if self.image_input:
            from PIL import Image

            std = np.asarray(contract.PIXEL_STD, np.float32)[:, None, None]
            mean = np.asarray(contract.PIXEL_MEAN, np.float32)[:, None, None]
            rgb = np.clip(np.rint(image[0] * std + mean), 0, 255).astype(np.uint8)
            feed = Image.fromarray(rgb.transpose(1, 2, 0))
        else:
            feed = image
        out = self.encoder.predict(contract.feeds(contract.ENCODER_INPUTS, feed))
        return np.asarray(out["image_embeddings"], np.float32)

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        if point_coords.shape[1] > self.point_limit:
            raise ValueError(f"{point_coords.shape[1]} prompt tokens exceed this Core ML "
                             f"decoder's {self.point_limit}")
        out = self.decoder.predict(contract.feeds(contract.DECODER_INPUTS, image_embeddings,
                                                  point_coords, point_labels, mask_input,
                                                  has_mask_input))
        return tuple(np.asarray(out[n], np.float32) for n in contract.names(contract.DECODER_OUTPUTS))


Backend = CoreMLBackend
