"""The benchmark runs end to end (bundle + naive export + eager torch, interleaved) and writes its
tables, JSON and plot; the report's ratio maths on synthetic numbers (behaviour only: no latency
is asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys

from mobilesam_runtime.bench import machine, report


def test_benchmark_report(export, tmp_path):
    bundle = export("onnx", "fp32")
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", str(bundle), "--runs", "2",
                           "--out", str(out), "--threads", "1"],
                          capture_output=True, text=True, check=True)
    assert "| onnx-fp32 |" in proc.stdout and "pytorch-eager-fp32" in proc.stdout
    assert "naive export" in proc.stdout and "### Goals" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["machine"]["logical_cores"] >= 1 and data["machine"]["isa"] is not None
    assert len(data["matmul_peak_gflops_per_round"]) == 2
    assert "numpy_fp32" in data["matmul_peak_gflops_per_round"][0]
    assert 70 < data["flops_gflop"]["encoder"] < 85 and data["flops_gflop"]["decoder_1"] > 1
    by_kind = {r["kind"]: r for r in data["results"]}
    assert set(by_kind) == {"bundle", "naive", "pytorch"}
    onnx = by_kind["bundle"]
    for key in ("encoder", "set_image", "predict", "decoder_1", "decoder_16", "preprocess"):
        assert onnx[key]["p50_ms"] > 0 and len(onnx["per_round_ms"][key]) == 2, key
    assert {"set_image.preprocess", "predict.decoder", "predict.postprocess"} <= set(onnx["splits_ms"])
    for r in data["results"]:  # each worker's own memory, not the parent's high-water mark
        assert 20 < r["peak_rss_mb"] < 8000 and r["cold_start_ms"] > 0
    assert onnx["size_mb"] > 10
    assert (out / "latency.png").stat().st_size > 1000 and (out / "report.md").exists()


def _row(kind, name, enc, **extra):
    return {"kind": kind, "name": name, "precision": "fp32", "size_mb": 1.0, "cold_start_ms": 10.0,
            "peak_rss_mb": 1.0, "encoder": {"p50_ms": enc[0], "p90_ms": enc[0], "min_ms": enc[0]},
            "per_round_ms": {"encoder": enc}, **extra}


def test_ratios_are_paired_per_round_and_impossible_limits_are_flagged():
    naive = _row("naive", "naive", [100.0, 200.0])
    fast = _row("bundle", "fast", [50.0, 100.0], gated=True)  # 2x faster in both rounds
    peaks = [{"numpy_fp32": 1000.0}, {"numpy_fp32": 500.0}]  # 1 GFLOP: limit 1 ms, then 2 ms
    derived = report.rows([naive, fast], peaks, {"encoder": 1.0})
    assert derived[1]["encoder_vs_naive"] == 2.0
    assert derived[1]["x_fp32"] == 50.0
    below = report.rows([_row("bundle", "x", [0.5, 1.0])], peaks, {"encoder": 1.0})[0]
    assert below["x_fp32"] == 0.5
    assert "measurement error" in report._limit_cell(below["x_fp32"])


def test_machine_facts_and_peak():
    facts = machine.cpu_facts()
    assert facts["cpu"] and isinstance(facts["flags"], list) and "numpy" in facts["versions"]
    assert isinstance(facts["isa"], list)
    peaks = machine.MatmulPeak(256).measure(repeats=1)
    assert peaks["numpy_fp32"] > 0 and machine.best(peaks, "fp32") >= peaks["numpy_fp32"]
    assert 1 < machine.peak_rss_mb() < 100_000
