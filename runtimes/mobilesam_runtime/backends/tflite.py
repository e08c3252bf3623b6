"""LiteRT (TFLite) backend on ai-edge-litert's Interpreter: no TensorFlow, no torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from .. import contract
from ..manifest import BundleError, signatures
from . import check_signature

SIGNATURE = "serving_default"  # B = 1
BATCH_SIGNATURE = "decoder_batch"  # B = the manifest's decoder_batch size, same weights


class LiteRtBackend:
    """Runs encoder.tflite / decoder.tflite (XNNPACK on CPU). The decoder has fixed prompt slots;
    the predictor fills unused ones with Label.UNUSED, which the graph masks out."""

    thread_safe = False  # an Interpreter is not: the predictor serialises calls
    max_batch = None  # decode() takes any number of prompt sets (see there)

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
        runners = [("encoder", self.encoder), ("decoder", self.decoder)]
        self.batch_decoder, self.batch_size = None, 1
        if "decoder_batch" in sigs:  # a second signature of the decoder file, B fixed
            self.batch_decoder = self._dec.get_signature_runner(BATCH_SIGNATURE)
            self.batch_size = contract.prompt_batch(sigs["decoder_batch"])
            runners.append(("decoder_batch", self.batch_decoder))
        if contract.prompt_batch(sigs["decoder"]) != 1:
            raise BundleError(f"{bundle_dir}: a TFLite decoder's serving_default signature takes "
                              f"one prompt set")
        for role, runner in runners:
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
        """Any number of prompt sets: full groups of `batch_size` through the batch signature;
        a remainder larger than half a group padded with copies of its first row (rows are
        independent: padding changes no result, and never outnumbers the real rows), smaller
        remainders one by one."""
        rows = (point_coords, point_labels, mask_input, has_mask_input)
        n, k = point_coords.shape[0], self.batch_size
        outs, start = [], 0
        while start < n:
            left = n - start
            if self.batch_decoder is not None and (left >= k or 2 * left > k):
                part = [r[start:start + k] for r in rows]
                pad = k - part[0].shape[0]
                if pad:
                    part = [np.concatenate([r, np.repeat(r[:1], pad, axis=0)]) for r in part]
                outs.append(tuple(o[:k - pad] for o in self._decode(self.batch_decoder,
                                                                     image_embeddings, part)))
                start += k - pad
            else:
                outs.append(self._decode(self.decoder, image_embeddings,
                                         [r[start:start + 1] for r in rows]))
                start += 1
        return tuple(np.concatenate([o[i] for o in outs]) for i in range(2))

    def _decode(self, runner, image_embeddings, rows) -> tuple[np.ndarray, np.ndarray]:
        out = self._run(runner, **contract.feeds(contract.DECODER_INPUTS, image_embeddings, *rows))
        return tuple(out[name] for name in contract.names(contract.DECODER_OUTPUTS))


Backend = LiteRtBackend
