"""ONNX Runtime backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .. import contract
from ..manifest import BundleError, signatures
from . import check_signature, flag, loaded_roles, prompt_batch_limit


class OnnxBackend:
    """Runs encoder.onnx / decoder.onnx with ONNX Runtime (CPU by default).

    `spinning` (default True, onnxruntime's own default): intra-op worker threads busy-wait for
    the next run. False lets them sleep as soon as a run ends, leaving the cores to the app.
    Measured on a 2-core AVX2 host (2026-12-03, 8 interleaved rounds): off made a click slower
    (70 vs 62 ms). The predictor's own work between runs (banded upscaling) runs in numpy's
    loops without BLAS threads, so there is no second thread pool to compete with (issue 16);
    an app that runs its own threads beside the predictor may still want False.

    `split_decoder` (default True): load the bundle's split decoder, when it has one, and let
    the predictor use it for prompts without a mask input (contract.SPLIT_DECODER_ROLES).
    """

    max_points = None
    thread_safe = True  # InferenceSession.run may be called from several threads

    def __init__(self, bundle_dir: Path, manifest: dict, threads: int | None = None,
                 providers: list[str] | None = None, spinning: bool | str = True,
                 split_decoder: bool | str = True) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.spinning = flag(spinning, "spinning")
        opts.add_session_config_entry("session.intra_op.allow_spinning",
                                      "1" if self.spinning else "0")
        providers = providers or ["CPUExecutionProvider"]
        files, sigs = manifest["graphs"], signatures(manifest)
        self.sessions = {role: ort.InferenceSession(str(bundle_dir / files[role]), opts,
                                                    providers=providers)
                         for role in loaded_roles(files, flag(split_decoder, "split_decoder"))}
        for role, session in self.sessions.items():
            check_signature(bundle_dir, role, sigs[role], {
                i.name: tuple(d if isinstance(d, int) else None for d in i.shape)
                for i in session.get_inputs()})
        self.encoder, self.decoder = self.sessions["encoder"], self.sessions["decoder"]
        self.split_decoder = "decoder_prompts" in self.sessions
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

    def decoder_state(self, image_embeddings: np.ndarray) -> tuple[np.ndarray, ...]:
        """The split decoder's image state (contract.DECODER_STATE), once per image."""
        return tuple(self.sessions["decoder_image"].run(
            contract.names(contract.DECODER_STATE),
            contract.feeds(contract.DECODER_IMAGE_INPUTS, image_embeddings)))

    def decode_prompts(self, state: tuple[np.ndarray, ...], point_coords, point_labels):
        """decode() for prompts without a mask input, from `decoder_state`'s state."""
        feeds = contract.feeds(contract.DECODER_PROMPTS_INPUTS, *state, point_coords, point_labels)
        iou, low = self.sessions["decoder_prompts"].run(contract.names(contract.DECODER_OUTPUTS),
                                                        feeds)
        return iou, low


Backend = OnnxBackend
