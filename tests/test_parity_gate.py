"""The parity gate fails a broken output head: IoU-prediction error and the mask a user picks by
argmax(scores) are gated for every precision, not only mask IoU and logits (issue 10)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mobilesam_export import parity
from mobilesam_export.bundle import export_bundle
from mobilesam_export.checkpoint import LoadedModel


def test_every_precision_gates_scores_and_selection():
    for precision in ("fp32", "fp16", "int8", "int8-static", "int8-weights", "palettize4"):
        for random_weights in (False, True):
            gate = parity.gate_for(precision, random_weights)
            assert gate["iou_pred_max_abs"] < 0.1 and gate["selection_mismatches"] == 0


def _pred(masks: list[np.ndarray], scores: list[float]):
    m = np.stack(masks).astype(np.float32) * 2 - 1  # logits: +1 inside, -1 outside
    return m, np.array(scores, np.float32), np.zeros((len(masks), 4, 4), np.float32)


def test_selection_agreement():
    a = np.zeros((20, 20), bool)
    a[:10] = True
    b = a.copy()
    b[10, 0] = True  # IoU(a, b) = 200/201 = 0.995
    c = ~a  # disjoint from a
    ref = _pred([a, c, c], [0.9, 0.1, 0.2])
    same = parity._compare(ref, _pred([a, c, c], [0.8, 0.1, 0.2]), 0.99)
    assert same["picks"] == [0, 0] and same["selection_agrees"]
    near = parity._compare(ref, _pred([a, b, c], [0.1, 0.9, 0.2]), 0.99)  # other index, same mask
    assert near["picks"] == [0, 1] and near["selection_agrees"] and near["selection_iou"] > 0.99
    wrong = parity._compare(ref, _pred([a, c, c], [0.1, 0.2, 0.9]), 0.99)
    assert wrong["picks"] == [0, 2] and not wrong["selection_agrees"]
    assert wrong["mask_iou_min"] == 1.0 and wrong["iou_pred_max_abs"] == pytest.approx(0.8)


def _faulted(loaded, fault) -> LoadedModel:
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        fault(model.mask_decoder)
    return LoadedModel(model, "random", None, True)


def _iou_head(dec):  # scores of the last multimask output off by +3
    dec.iou_prediction_head.layers[-1].bias[-1] += 3.0


def _mask_head(dec):  # the hypernetwork of mask 1 shifted: that mask's logits change
    dec.output_hypernetworks_mlps[1].layers[-1].bias += 3.0


@pytest.mark.parametrize("fault,must_fail,old_gate_passes", [
    (_iou_head, ("iou_pred_max_abs", "selection_mismatches"), True),
    (_mask_head, ("mask_iou_min",), False),
])
def test_gate_fails_a_faulted_head(loaded, tmp_path, fault, must_fail, old_gate_passes):
    """The bundle is exported from a faulted model; parity compares it with the good one."""
    bundle = export_bundle(_faulted(loaded, fault), "onnx", "fp32", tmp_path, run_parity=False)
    report = parity.run_parity(bundle, loaded.model, limit=1)
    assert not report["passed"]
    failed = {f.split()[0] for f in report["failures"]}
    assert set(must_fail) <= failed, report["failures"]
    s = report["summary"]
    old = s["mask_iou_min"] >= 0.999 and s["logits_max_abs"] <= 1e-3
    assert old == old_gate_passes  # the IoU-head fault passed the gate before this issue


class _FrozenEmbedding:
    """A bundle whose encoder returns the first image's embedding for every image (the failure
    reported for fp16 OpenVINO on some CPUs)."""

    def __init__(self, pred) -> None:
        self._pred, self._first = pred, None

    def __getattr__(self, name):
        return getattr(self._pred, name)

    def set_image(self, image) -> None:
        self._pred.set_image(image)
        if self._first is None:
            self._first = self._pred.features
        self._pred.features = self._first


def test_same_embedding_for_every_image_fails_the_gate(export, loaded):
    import mobilesam_runtime

    bundle = export("onnx", "fp32")
    good = parity._run_parity(mobilesam_runtime.load(bundle), loaded.model, None, None)
    assert good["passed"] and 0.99 < good["summary"]["embedding_spread_min"] < 1.01
    frozen = parity._run_parity(_FrozenEmbedding(mobilesam_runtime.load(bundle)), loaded.model,
                                None, None)
    assert frozen["summary"]["embedding_spread_min"] < 1e-6
    assert any(f.startswith("embedding_spread_min") for f in frozen["failures"])
