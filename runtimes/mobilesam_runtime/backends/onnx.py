"""ONNX Runtime backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .. import contract
from ..manifest import BundleError, signatures
from . import check_signature, prompt_batch_limit


def _flag(value: bool | str, name: str) -> bool:
    """A boolean option, also as the strings a command line passes (1/0, true/false)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


class OnnxBackend:
    """Runs encoder.onnx / decoder.onnx with ONNX Runtime (CPU by default).

    `spinning` (default True, onnxruntime's own default): intra-op worker threads busy-wait for
    the next run. False lets them sleep as soon as a run ends, leaving the cores to the app.
    Measured on a 2-core AVX2 host (2026-12-03, 8 interleaved rounds): off made a click slower
    (70 vs 62 ms). The predictor's own work between runs (banded upscaling) runs in numpy's
    loops without BLAS threads, so there is no second thread pool to compete with (issue 16);
    an app that runs its own threads beside the predictor may still want False.
    """

    max_points = None
    thread_safe = True  # InferenceSession.run may be called from several threads

    def __init__(self, bundle_dir: Path, manifest: dict, threads: int | None = None,
                 providers: list[str] | None = None, spinning: bool | str = True) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.spinning = _flag(spinning, "spinning")
        opts.add_session_config_entry("session.intra_op.allow_spinning",
                                      "1" if self.spinning else "0")
        providers = providers or ["CPUExecutionProvider"]
        files, sigs = manifest["graphs"], signatures(manifest)
        self.encoder = ort.InferenceSession(str(bundle_dir / files["encoder"]), opts,
                                            providers=providers)
        self.decoder = ort.InferenceSession(str(bundle_dir / files["decoder"]), opts,
                                            providers=providers)
        for role, session in (("encoder", self.encoder), ("decoder", self.decoder)):
            check_signature(bundle_dir, role, sigs[role], {
                i.name: tuple(d if isinstance(d, int) else None for d in i.shape)
                for i in session.get_inputs()})
        self.max_batch = prompt_batch_limit(sigs["decoder"])  # None; 1 for contract-1 bundles
        if not isinstance(contract.prompt_points(sigs["decoder"]), contract.Dim):
            raise BundleError(f"{bundle_dir}: ONNX decoders take a dynamic number of points")

    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.encoder.run(contract.names(contract.ENCODER_OUTPUTS),
                                contract.feeds(contract.ENCODER_INPUTS, image))[0]

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        feeds = contract.feeds(contract.DECODER_INPUTS, image_embeddings, point_coords,
                               point_labels, mask_input, has_mask_input)
        iou, low = self.decoder.run(contract.names(contract.DECODER_OUTPUTS), feeds)
        return iou, low


Backend = OnnxBackend
