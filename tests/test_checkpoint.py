"""Checkpoint loading: the official layout loads strictly; everything else fails loudly."""

from __future__ import annotations

import pickle

import pytest
import torch

from mobilesam_export import checkpoint
from mobilesam_export.checkpoint import CheckpointError, load_model


def test_bare_and_wrapped_state_dicts_load(loaded, tmp_path):
    sd = loaded.model.state_dict()
    for i, obj in enumerate((sd, {"model": sd})):
        path = tmp_path / f"ck{i}.pt"
        torch.save(obj, path)
        got = load_model(path)
        assert not got.random_weights and got.sha256 == checkpoint.sha256_file(path)
        for k, v in got.model.state_dict().items():
            assert torch.equal(v, sd[k]), k


def test_random_weights_are_flagged_and_seeded(loaded):
    assert loaded.random_weights and loaded.sha256 is None
    prov = loaded.provenance()
    assert prov["random_weights"] is True and "RANDOM" in prov["warning"]
    with pytest.warns(UserWarning, match="RANDOM"):
        again = load_model("random")
    a, b = loaded.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*WEIGHTS=random"):
        load_model(tmp_path / "nope.pt")


def test_truncated_file(loaded, tmp_path):
    path = tmp_path / "full.pt"
    torch.save(loaded.model.state_dict(), path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(CheckpointError, match="is truncated"):
        load_model(cut)


class NeedsCode:
    pass


def test_pickle_that_needs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": NeedsCode()}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(CheckpointError, match="needs code"):
        load_model(path)


def test_foreign_sam_checkpoint_is_named(tmp_path, loaded):
    sd = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("image_encoder.")}
    sd["image_encoder.blocks.0.attn.qkv.weight"] = torch.zeros(2304, 768)
    sd["image_encoder.pos_embed"] = torch.zeros(1, 64, 64, 768)
    path = tmp_path / "sam_vit_b.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError,
                       match="foreign model: a SAM ViT-B checkpoint.*missing keys.*unexpected keys"):
        load_model(path)


def test_wrong_shapes_are_named(tmp_path, loaded):
    sd = dict(loaded.model.state_dict())
    sd["mask_decoder.iou_token.weight"] = torch.zeros(1, 128)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="wrong shape keys: mask_decoder.iou_token.weight"):
        load_model(path)


def test_default_weights_offline_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(checkpoint.urllib.request, "urlopen", offline)
    with pytest.raises(CheckpointError, match="could not download.*copy it to weights/mobile_sam.pt"):
        load_model(None)
    assert not list((tmp_path / "cache").rglob("*.part"))
