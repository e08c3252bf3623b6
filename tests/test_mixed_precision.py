"""Mixed precision chosen per checkpoint: the search logic (with a fake format, fast), FLOP
counts from code, and the unseen-checkpoint generator. The search is not wired into the
exporters yet (see mixed_precision.py's module docstring)."""

from __future__ import annotations

import pytest
import synthetic_checkpoints as checkpoints

from mobilesam_export import mixed_precision as mp


class FakeScorer:
    """Score = 1 - sum of the errors of the stages left int8 (known, additive)."""

    def __init__(self, errors: dict[str, float]) -> None:
        self.errors = errors

    def score(self, embeddings):
        err = float(embeddings[0])
        return {"cosine_min": 1 - err / 100, "mask_iou_min": 1 - err, "mask_iou_mean": 1 - err}


def _run(errors, target, flops=None):
    flops = flops or {u: 1.0 for u in mp.UNITS}
    made = []

    def quantize(units):
        made.append(units)
        return units

    def embed(units):
        return [sum(e for u, e in errors.items() if u not in units)]

    _, record = mp.search(quantize, embed, FakeScorer(errors), flops, target, log=lambda s: None)
    return record, made


def test_search_keeps_everything_int8_when_the_target_is_met():
    record, made = _run({u: 0.001 for u in mp.UNITS}, mp.Target(0.99, 0.999))
    assert record["float_blocks"] == [] and record["int8_flop_share"] == 1.0 and len(made) == 1


def test_search_restores_the_sensitive_stage_first():
    errors = {u: 0.002 for u in mp.UNITS} | {"layers.2": 0.08}
    record, _ = _run(errors, mp.Target(0.97, 0.999))
    assert record["float_blocks"] == ["layers.2"] and record["target_met"]
    assert record["sensitivity"]["layers.2"]["mask_iou_gain"] == pytest.approx(0.08)


def test_search_prefers_cheap_stages_for_equal_repair():
    errors = {u: 0.0 for u in mp.UNITS} | {"neck": 0.05, "layers.3": 0.05}
    flops = {u: 1.0 for u in mp.UNITS} | {"layers.3": 20.0}
    record, _ = _run(errors, mp.Target(0.94, 0.999), flops)
    assert record["float_blocks"] == ["neck"]
    assert record["int8_flop_share"] == pytest.approx(1 - 1 / sum(flops.values()))


def test_search_reports_an_unmet_target():
    errors = {u: 0.0 for u in mp.UNITS} | {"layers.1": 0.5}
    record, _ = _run(errors, mp.Target(1.01, 0.999))
    assert not record["target_met"] and set(record["float_blocks"]) == set(mp.UNITS)


def test_encoder_flops_are_counted_from_the_model(loaded):
    flops = mp.unit_flops(loaded.model)
    assert set(flops) == set(mp.UNITS)
    assert sum(flops.values()) / 1e9 == pytest.approx(77.5, abs=0.5)  # MobileSAM's 77.5 GFLOP
    assert max(flops, key=flops.get) in ("layers.2", "layers.3")


def test_test_checkpoints_are_official_layout_and_not_flagged(loaded, tmp_path):
    from mobilesam_export.checkpoint import load_model

    for spec in checkpoints.SPECS[1:2]:
        m = load_model(str(checkpoints.save(spec, tmp_path)))
        assert not m.random_weights and m.sha256
        sd = checkpoints.state_dict(spec)
        assert sd.keys() == loaded.model.state_dict().keys()
        norm = sd["image_encoder.layers.2.blocks.0.mlp.norm.weight"]
        assert norm.abs().max() > 5 * norm.abs().median()  # outlier channels present
