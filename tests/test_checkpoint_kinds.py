"""Checkpoint diagnosis: each way a file can be wrong gets its own message (issue 10)."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from mobilesam_export import checkpoint
from mobilesam_export.checkpoint import CheckpointError, load_model

NOT_CKPT = "is not a PyTorch checkpoint: it looks like"


def _onnx_bytes() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return onnx.helper.make_model(graph).SerializeToString()


@pytest.mark.parametrize("name,content,looks_like", [
    ("README.md", b"# mobilesam-export\n\nExport MobileSAM ...\n", "a text file"),
    ("notes.txt", b"hello, this starts with h\n", "a text file"),  # was KeyError: 101
    ("photo.jpg", None, "a JPEG image"),
    ("model.onnx", None, "an ONNX model"),
    ("random.bin", os.urandom(4096) + b"\xff", None),  # random: any non-checkpoint verdict
    ("empty.pt", b"", "an empty file"),
    ("plain.pkl", pickle.dumps({"a": 1}, protocol=2), "a Python pickle that is not a torch.save"),
])
def test_not_a_checkpoint(tmp_path, name, content, looks_like):
    if name == "photo.jpg":
        content = _first_jpeg()
    elif name == "model.onnx":
        content = _onnx_bytes()
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=NOT_CKPT) as e:
        load_model(path)
    if looks_like:
        assert looks_like in str(e.value)
    assert "needs code" not in str(e.value) and "KeyError" not in str(e.value)


def _first_jpeg() -> bytes:
    from pathlib import Path

    import mobilesam_runtime

    folder = Path(mobilesam_runtime.__file__).parent / "data" / "evaluation"
    return next(p for p in sorted(folder.iterdir()) if p.suffix == ".jpg").read_bytes()


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("keep", [0.3, 0.999])
def test_truncated(loaded, tmp_path, legacy, keep):
    path = tmp_path / "full.pt"
    torch.save(loaded.model.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    cut = tmp_path / "cut.pt"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="is truncated") as e:
        load_model(cut)
    assert "needs code" not in str(e.value)


class NeedsCode:
    pass


@pytest.mark.parametrize("legacy", [False, True])
def test_needs_code(tmp_path, legacy):
    path = tmp_path / "evil.pt"
    torch.save({"model": NeedsCode()}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError, match="needs code to load.*NeedsCode"):
        load_model(path)


@pytest.mark.parametrize("width,name", [(768, "ViT-B"), (1280, "ViT-H")])
def test_foreign_sam_names_the_variant(tmp_path, width, name):
    sd = {"image_encoder.pos_embed": torch.zeros(1, 64, 64, width),
          "image_encoder.blocks.0.attn.qkv.weight": torch.zeros(3 * width, width),
          "mask_decoder.iou_token.weight": torch.zeros(1, 256)}
    path = tmp_path / f"sam_{name}.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=f"foreign model: a SAM {name} checkpoint"):
        load_model(path)


def test_non_finite_weights_are_named(loaded, tmp_path):
    sd = dict(loaded.model.state_dict())
    sd["mask_decoder.iou_prediction_head.layers.2.bias"] = sd[
        "mask_decoder.iou_prediction_head.layers.2.bias"].clone().fill_(float("nan"))
    w = sd["image_encoder.neck.0.weight"].clone()
    w[0, 0, 0, 0] = float("inf")
    sd["image_encoder.neck.0.weight"] = w
    path = tmp_path / "nan.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="2 tensors hold NaN or infinity") as e:
        load_model(path)
    assert "iou_prediction_head.layers.2.bias" in str(e.value)
    assert "image_encoder.neck.0.weight" in str(e.value)


def test_sniff_recognises_both_torch_layouts(loaded, tmp_path):
    sd = {"a": torch.ones(2)}
    for legacy in (False, True):
        torch.save(sd, tmp_path / "x.pt", _use_new_zipfile_serialization=not legacy)
        head = (tmp_path / "x.pt").read_bytes()[:512]
        assert checkpoint.sniff(head) == ("legacy" if legacy else "zip")
