"""Small stand-ins shared by tests: tiny valid ONNX graphs and bundles with real hashes."""

from __future__ import annotations

import json
from pathlib import Path

from mobilesam_runtime import contract, manifest


def tiny_onnx(external: str | None = None, folder: Path | None = None) -> bytes:
    """A valid one-node ONNX model; with `external`, its initializer lives in that file."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones(4, np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    model = helper.make_model(graph)
    if external:
        w.ClearField("float_data")
        w.ClearField("raw_data")
        model.graph.initializer[0].data_location = TensorProto.EXTERNAL
        entry = model.graph.initializer[0].external_data.add()
        entry.key, entry.value = "location", external
        if folder is not None and "/" not in external and ".." not in external:
            (folder / external).write_bytes(np.ones(4, np.float32).tobytes())
    return model.SerializeToString()


def make_bundle(folder: Path, fmt: str = "tflite", files: dict[str, bytes] | None = None,
                graphs: dict[str, str] | None = None) -> Path:
    """A small bundle with real hashes (its graphs are stand-ins: validated, never run)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml", "coreml": ".mlpackage"}[fmt]
    graphs = graphs or {"encoder": f"encoder{suffix}", "decoder": f"decoder{suffix}"}
    files = files if files is not None else {n: (tiny_onnx() if fmt == "onnx" else b"graph " + n.encode())
                                             for n in graphs.values()}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    listed = {}
    for name in files:
        sha, size = manifest.digest(folder / name, name)
        listed[name] = {"sha256": sha, "bytes": size}
    slots = {"num_points": 16, "num_prompts": 1} if fmt == "tflite" else {}
    m = {"manifest_version": manifest.MANIFEST_VERSION, "format": fmt, "precision": "fp32",
         "created": "2026-01-01T00:00:00Z", "graphs": graphs, "files": listed,
         "weights": {"source": "random", "sha256": None, "random_weights": True},
         "contract": contract.describe(),
         "signatures": {"encoder": contract.graph_signature("encoder").to_json(),
                        "decoder": contract.graph_signature("decoder", slots).to_json()}}
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder


class FakeBackend:
    """A deterministic stand-in for the two graphs, for tests that must not run a model.

    Its outputs depend on every input through float32 arithmetic, so NaN/inf or an overflowing
    value that reached it would show in the outputs (as it would in a real graph); it records
    concurrent calls when it claims not to be thread-safe."""

    thread_safe = False
    max_batch = 1  # one prompt set per decode(): predict_batch splits larger batches

    def __init__(self, max_points: int | None = None, delay: float = 0.0) -> None:
        self.max_points = max_points
        self.delay = delay
        self.inside = 0
        self.overlaps = 0
        import threading

        self._count_lock = threading.Lock()

    def _enter(self):
        import time

        with self._count_lock:
            self.inside += 1
            if self.inside > 1:
                self.overlaps += 1
        if self.delay:
            time.sleep(self.delay)

    def _leave(self):
        with self._count_lock:
            self.inside -= 1

    def encode(self, image):
        import numpy as np

        self._enter()
        try:
            assert image.shape == (1, 3, contract.IMAGE_SIZE, contract.IMAGE_SIZE)
            pooled = image[0].reshape(3, 64, 16, 64, 16).mean(axis=(2, 4))  # 3 x 64 x 64
            emb = np.repeat(pooled, 86, axis=0)[: contract.EMBED_DIM][None]
            return emb.astype(np.float32)
        finally:
            self._leave()

    def decode(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        import numpy as np

        self._enter()
        try:
            n = point_coords.shape[1]
            assert point_coords.shape == (1, n, 2) and point_labels.shape == (1, n)
            assert mask_input.shape == (1, 1, 256, 256) and has_mask_input.shape == (1,)
            if self.max_points is not None:
                assert n == self.max_points
            for a in (image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
                assert a.dtype == np.float32
            c = point_coords.astype(np.float32) / np.float32(1024)
            base = image_embeddings[0, :4].repeat(4, axis=1).repeat(4, axis=2)  # 4 x 256 x 256
            shift = (c.sum() + point_labels.sum() * np.float32(0.1)
                     + has_mask_input[0] * mask_input.mean())
            low = (base + shift * np.float32(0.01) - base.mean()).astype(np.float32)[None]
            iou = np.tanh(low.mean(axis=(2, 3)) + np.arange(4, dtype=np.float32))
            return iou.astype(np.float32), low
        finally:
            self._leave()
