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
    slots = {"num_points": 16} if fmt == "tflite" else {}
    m = {"manifest_version": manifest.MANIFEST_VERSION, "format": fmt, "precision": "fp32",
         "created": "2026-01-01T00:00:00Z", "graphs": graphs, "files": listed,
         "weights": {"source": "random", "sha256": None, "random_weights": True},
         "contract": contract.describe(),
         "signatures": {"encoder": contract.graph_signature("encoder").to_json(),
                        "decoder": contract.graph_signature("decoder", slots).to_json()}}
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder
