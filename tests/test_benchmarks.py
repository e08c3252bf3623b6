"""The benchmark runs end to end on a bundle and writes its table, JSON and plot (behaviour
only: no latency is asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys

from mobilesam_runtime.bench import machine


def test_benchmark_report(export, tmp_path):
    bundle = export("onnx", "fp32")
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", str(bundle), "--runs", "1",
                           "--out", str(out), "--threads", "1"],
                          capture_output=True, text=True, check=True)
    assert "| onnx-fp32 |" in proc.stdout and "| pytorch-eager-fp32 |" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["machine"]["logical_cores"] >= 1 and "numpy_fp32" in data["matmul_peak_gflops"]
    onnx = next(r for r in data["results"] if r["name"] == "onnx-fp32")
    assert set(onnx["decoder_by_points"]) == {"1", "2", "5", "16"}
    for key in ("encoder", "decoder", "preprocess", "postprocess", "end_to_end", "predict_1pt"):
        assert onnx[key]["p50_ms"] > 0, key
    assert onnx["peak_rss_mb"] > 0 and onnx["size_mb"] > 10
    assert (out / "latency.png").stat().st_size > 1000 and (out / "report.md").exists()


def test_machine_facts():
    facts = machine.cpu_facts()
    assert facts["cpu"] and isinstance(facts["flags"], list) and "numpy" in facts["versions"]
