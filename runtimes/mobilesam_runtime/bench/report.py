"""Benchmark report: markdown table, JSON, PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

ENCODER_GFLOP = 77.5  # per 1024x1024 image (MobileSAM paper / our graph's op count)


def _ms(d: dict, key: str) -> str:
    v = d.get(key, {})
    return f"{v['p50_ms']:.1f}" if isinstance(v, dict) and "p50_ms" in v else "–"


def same_format_fp32(results: list[dict], r: dict) -> float | None:
    """Encoder p50 of the fp32 bundle of r's format run with the same backend options."""
    for o in results:
        if (o.get("format") == r.get("format") and o.get("precision") == "fp32"
                and o.get("inference_precision") == r.get("inference_precision")):
            return o["encoder"]["p50_ms"]
    return None


def to_markdown(results: list[dict], machine: dict, peaks: dict) -> str:
    best_fp32 = max((v for k, v in peaks.items() if k.endswith("f32") or k.endswith("fp32")), default=None)
    best_bf16 = peaks.get("openvino_bf16")
    limit_fp32 = ENCODER_GFLOP / best_fp32 * 1e3 if best_fp32 else None
    limit_bf16 = ENCODER_GFLOP / best_bf16 * 1e3 if best_bf16 else None
    torch_enc = next((r["encoder"]["p50_ms"] for r in results if r["format"] == "pytorch"), None)
    lines = [
        f"Machine: {machine['cpu']}, {machine['usable_cores']} usable cores, flags "
        f"{' '.join(machine['flags'])}; {machine['os']}.",
        "Matmul peak (GFLOPS): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items())
        + (f". Encoder compute limit: fp32 {limit_fp32:.0f} ms" if limit_fp32 else "")
        + (f", bf16 {limit_bf16:.0f} ms" if limit_bf16 else "") + ".",
        "",
        "| bundle | size MB | encoder p50 ms (p90 / min) | × fp32 limit | vs eager torch "
        "| vs same format fp32 "
        "| decoder p50 ms by points 1/2/5/16 | predict 1pt ms | pre ms | post ms "
        "| set_image+predict ms | cold start ms | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        enc = r["encoder"]
        by = r.get("decoder_by_points", {})
        dec = "/".join(f"{v['p50_ms']:.1f}" if "p50_ms" in v else "n/a" for v in by.values()) or \
            _ms(r, "decoder")
        own = r.get("matmul_peak_gflops", {})
        own_fp32 = max((v for k, v in own.items() if k.endswith(("f32", "fp32"))), default=None)
        row_limit = ENCODER_GFLOP / own_fp32 * 1e3 if own_fp32 else limit_fp32
        mult = f"{enc['p50_ms'] / row_limit:.2f}" if row_limit else "–"
        speed = f"{torch_enc / enc['p50_ms']:.2f}×" if torch_enc else "–"
        fp32 = same_format_fp32(results, r)
        vs_fp32 = f"{fp32 / enc['p50_ms']:.2f}×" if fp32 and r.get("precision") != "fp32" else "–"
        size = f"{r['size_mb']:.1f}" if r.get("size_mb") else "–"
        lines.append(
            f"| {r['name']} | {size} | {enc['p50_ms']:.0f} ({enc['p90_ms']:.0f} / {enc['min_ms']:.0f}) "
            f"| {mult} | {speed} | {vs_fp32} | {dec} | {_ms(r, 'predict_1pt')} | {_ms(r, 'preprocess')} | "
            f"{_ms(r, 'postprocess')} | {_ms(r, 'end_to_end')} | {r['cold_start_ms']:.0f} | "
            f"{r['peak_rss_mb']:.0f} |")
    runs = results[0]["encoder"]["runs"] if results else 0
    lines += ["", f"Encoder: {runs} timed runs after warm-up; decoder and predict: {3 * runs} runs. "
              "`× fp32 limit` = encoder p50 ÷ (77.5 GFLOP ÷ best fp32 matmul peak measured in the "
              "same child process right after the bundle). `vs same format fp32`: that format's fp32 "
              "encoder p50 ÷ this one, same backend options, same run (reduced precision must be "
              "≥ 1.3× to be worth it). "
              "Random weights do not change latency."]
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in results]
    enc = [r["encoder"]["p50_ms"] for r in results]
    dec = [r["decoder"]["p50_ms"] for r in results]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(names) + 2), sharey=True)
    for ax, vals, title in ((axes[0], enc, "encoder p50 (ms)"), (axes[1], dec, "decoder p50, 1 point (ms)")):
        bars = ax.barh(names, vals, color=["#888" if n.startswith("pytorch") else "#3b7dd8" for n in names])
        ax.bar_label(bars, fmt="%.0f" if max(vals) > 50 else "%.1f", padding=2)
        ax.set_title(title)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, results: list[dict], machine: dict, peaks: dict) -> str:
    out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(results, machine, peaks)
    (out / "report.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps(
        {"machine": machine, "matmul_peak_gflops": peaks, "results": results}, indent=2))
    try:
        plot(results, out / "latency.png")
    except ImportError:
        md += "\n\n(matplotlib not installed: no plot)"
    return md
