"""Benchmark report: markdown tables (ratios from interleaved rounds), goal checks, JSON, plot.

Ratios between two rows are medians of per-round ratios (both rows ran in the same round, a few
seconds apart), so a host whose speed drifts affects both alike. `× limit` is the encoder time
over its compute limit (graph FLOPs ÷ the fastest library's matmul peak measured in the same
round); a value below 1.0 means the peak was under-measured and is flagged as an error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import machine
from .measure import BATCH

NAIVE, TORCH = "naive", "pytorch"


def _p50(r: dict, op: str) -> float | None:
    v = r.get(op)
    return v["p50_ms"] if isinstance(v, dict) and "p50_ms" in v else None


def _fmt(v: float | None, digits: int = 0, suffix: str = "") -> str:
    return "–" if v is None else f"{v:.{digits}f}{suffix}"


def paired(a: dict, b: dict, op: str) -> float | None:
    """Median over rounds of a's time ÷ b's time for `op` (> 1: b is faster)."""
    ra, rb = a.get("per_round_ms", {}).get(op), b.get("per_round_ms", {}).get(op)
    if not ra or not rb or len(ra) != len(rb):
        return None
    return float(np.median(np.asarray(ra) / np.asarray(rb)))


def limit_ratio(r: dict, op: str, gflop: float | None, peaks: list[dict], family: str) -> float | None:
    """Median over rounds of (time ÷ compute limit), the limit from that round's best peak."""
    times = r.get("per_round_ms", {}).get(op)
    if not gflop or not times or len(times) != len(peaks):
        return None
    best = [machine.best(p, family) for p in peaks]
    if any(b is None for b in best):
        return None
    return float(np.median([t / (gflop / b * 1e3) for t, b in zip(times, best)]))


def _limit_cell(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.2f} ⚠ below 1.0: measurement error" if x < 1.0 else f"{x:.2f}"


def reduced(r: dict) -> bool:
    """Reduced precision: a non-fp32 bundle or a bf16/f16 runtime precision."""
    return r.get("precision") != "fp32" or r.get("inference_precision") in ("bf16", "f16")


def _find(results: list[dict], kind: str) -> dict | None:
    return next((r for r in results if r.get("kind") == kind), None)


def rows(results: list[dict], peaks: list[dict], flops: dict) -> list[dict]:
    """Derived numbers per result (the tables and the goal checks read these)."""
    naive, torch = _find(results, NAIVE), _find(results, TORCH)
    out = []
    for r in results:
        d = {"name": r["name"], "kind": r.get("kind"), "r": r}
        for op in ("encoder", "set_image", "predict"):
            d[f"{op}_vs_naive"] = paired(naive, r, op) if naive and r is not naive else None
        d["encoder_vs_torch"] = paired(torch, r, "encoder") if torch and r is not torch else None
        d["x_fp32"] = limit_ratio(r, "encoder", flops.get("encoder"), peaks, "fp32")
        d["x_bf16"] = limit_ratio(r, "encoder", flops.get("encoder"), peaks, "bf16") \
            if r.get("inference_precision") == "bf16" else None
        d["decoder_x_fp32"] = limit_ratio(r, "decoder_1", flops.get("decoder_1"), peaks, "fp32")
        pre, si = r.get("splits_ms", {}).get("set_image.preprocess"), _p50(r, "set_image")
        d["pre_share"] = pre / si if pre is not None and si else None
        d["cold_x"] = r["cold_start_ms"] / si if si else None
        dec, post = r.get("splits_ms", {}).get("predict.decoder"), r.get("splits_ms", {}).get(
            "predict.postprocess")
        d["predict_dec"], d["predict_post"] = dec, post
        batch, one = _p50(r, f"predict_batch_{BATCH}"), _p50(r, "predict")
        d["batch_per_box_ms"] = batch / BATCH if batch else None
        d["batch_per_prompt_x"] = batch / BATCH / one if batch and one else None
        out.append(d)
    return out


def tables(results: list[dict], peaks: list[dict], flops: dict, derived: list[dict]) -> list[str]:
    lines = [
        "| row | size MB | encoder graph p50 ms (p90 / min) | × fp32 limit | × bf16 limit "
        "| encoder vs naive | vs eager torch | `set_image` ms | vs naive | per click ms "
        "(1 pt, 3 masks) | vs naive | gated |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for d in derived:
        r, enc = d["r"], d["r"].get("encoder", {})
        gated = {NAIVE: "– (reference)", TORCH: "reference"}.get(
            d["kind"], "yes" if r.get("gated") else "**no**")
        lines.append(
            f"| {d['name']} | {_fmt(r.get('size_mb'), 1)} | {enc['p50_ms']:.0f} ({enc['p90_ms']:.0f} / "
            f"{enc['min_ms']:.0f}) | {_limit_cell(d['x_fp32'])} | {_limit_cell(d['x_bf16'])} | "
            f"{_fmt(d['encoder_vs_naive'], 2, '×')} | {_fmt(d['encoder_vs_torch'], 2, '×')} | "
            f"{_fmt(_p50(r, 'set_image'))} | {_fmt(d['set_image_vs_naive'], 2, '×')} | "
            f"{_fmt(_p50(r, 'predict'), 1)} | {_fmt(d['predict_vs_naive'], 2, '×')} | {gated} |")
    lines += ["", "| row | decoder graph ms by points 1/2/5/16 | decoder × fp32 limit | per click: "
              "decoder / post ms | pre-processing % of `set_image` | cold start ms (× warm "
              "`set_image`) | peak RSS MB | predict_batch per box ms (× one click) |",
              "|---|---|---:|---|---:|---:|---:|---:|"]
    for d in derived:
        r = d["r"]
        by = "/".join(_fmt(_p50(r, f"decoder_{n}"), 1) if f"decoder_{n}" in r else "n/a"
                      for n in (1, 2, 5, 16))
        click = f"{_fmt(d['predict_dec'], 1)} / {_fmt(d['predict_post'], 1)}"
        lines.append(f"| {d['name']} | {by} | {_limit_cell(d['decoder_x_fp32'])} | {click} | "
                     f"{_fmt(None if d['pre_share'] is None else 100 * d['pre_share'], 1, ' %')} | "
                     f"{r['cold_start_ms']:.0f} ({_fmt(d['cold_x'], 2, '×')}) | {r['peak_rss_mb']:.0f} | "
                     f"{_fmt(d['batch_per_box_ms'], 1)} ({_fmt(d['batch_per_prompt_x'], 2, '×')}) |")
    return lines


def goals(results: list[dict], derived: list[dict], facts: dict) -> list[str]:
    """Issue 16's goals, checked on these numbers (which apply depends on the ISA)."""
    isa = set(facts.get("isa", []))
    bundles = [d for d in derived if d["kind"] == "bundle"]
    fp32 = [d for d in bundles if not reduced(d["r"]) and d["x_fp32"] is not None]
    out = ["", "### Goals (issue 16) on this run", ""]

    def mark(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    if _find(results, NAIVE):
        slow = [f"{d['name']} ({op} {d[f'{op}_vs_naive']:.2f}×)" for d in bundles
                for op in ("encoder", "set_image", "predict")
                if d[f"{op}_vs_naive"] is not None and d[f"{op}_vs_naive"] <= 1.0]
        click = [f"{d['name']} {d['predict_vs_naive']:.2f}×" for d in bundles
                 if d["predict_vs_naive"] is not None and d["predict_vs_naive"] < 1.5]
        out.append(f"1. Ahead of the naive export on every axis: {mark(not slow)}"
                   + (f" — behind or level: {', '.join(slow)}" if slow else "") + ".")
        out.append(f"   Per click ≥ 1.5× the naive SAM-official decoder: {mark(not click)}"
                   + (f" — below: {', '.join(click)}" if click else "") + ".")
    else:
        out.append("1. Naive-export row not measured: goal 1 not checked.")
    batch = [d for d in bundles if d["batch_per_prompt_x"] is not None]
    if batch:
        over = [f"{d['name']} {d['batch_per_prompt_x']:.2f}×" for d in batch
                if d["batch_per_prompt_x"] > 0.5]
        out.append(f"   `predict_batch` ({BATCH} boxes) per prompt ≤ 0.5× one click (issue 12): "
                   f"{mark(not over)}" + (f" — above: {', '.join(over)}" if over else "") + ".")
    if fp32:
        best = min(fp32, key=lambda d: d["x_fp32"])
        worst = max(fp32, key=lambda d: d["x_fp32"])
        out.append(f"2. Best fp32 encoder ≤ 1.2× the fp32 limit: {mark(best['x_fp32'] <= 1.2)} "
                   f"({best['name']} {best['x_fp32']:.2f}×); every fp32 encoder ≤ 1.6×: "
                   f"{mark(worst['x_fp32'] <= 1.6)} (worst {worst['name']} {worst['x_fp32']:.2f}×).")
    else:
        out.append("2. No fp32 bundle with a compute limit: goal 2 not checked.")
    applies = [n for n in ("BF16", "VNNI") if n in isa]
    cands = [d for d in bundles if reduced(d["r"]) and d["r"].get("gated")
             and d["encoder_vs_torch"] is not None and d["x_fp32"] is not None]
    if not applies:
        out.append("3. Reduced precision: no bf16 or VNNI on this CPU — goal 3 does not apply.")
    elif cands:
        best = max(cands, key=lambda d: d["encoder_vs_torch"])
        ok = best["encoder_vs_torch"] >= 7 and best["x_fp32"] <= 0.6
        out.append(f"3. Best gated reduced-precision encoder ({'/'.join(applies)} here) ≥ 7× eager "
                   f"torch and ≤ 0.6× the fp32 limit: {mark(ok)} ({best['name']}: "
                   f"{best['encoder_vs_torch']:.2f}× torch, {best['x_fp32']:.2f}× fp32 limit).")
    else:
        out.append(f"3. Reduced precision ({'/'.join(applies)} here): no gated reduced-precision "
                   "row in this run — **not met**.")
    pre = [d for d in bundles if d["pre_share"] is not None and d["pre_share"] > 0.03]
    cold = [d for d in bundles if d["cold_x"] is not None and d["cold_x"] > 2.0]
    pre_txt = ", ".join(f"{d['name']} {100 * d['pre_share']:.1f} %" for d in pre)
    cold_txt = ", ".join(f"{d['name']} {d['cold_x']:.2f}×" for d in cold)
    out.append(f"4. Pre-processing ≤ 3 % of `set_image`: {mark(not pre)}"
               + (f" — over: {pre_txt}" if pre else "")
               + f"; cold start ≤ 2× warm `set_image`: {mark(not cold)}"
               + (f" — over: {cold_txt}" if cold else "")
               + ". Thread pools: compare `per click` with decoder + post in the second table.")
    return out


def to_markdown(results: list[dict], facts: dict, peaks: list[dict], flops: dict) -> str:
    derived = rows(results, peaks, flops)
    med = {k: float(np.median([p[k] for p in peaks])) for k in (peaks[0] if peaks else {})}
    fp32, bf16 = machine.best(med, "fp32"), machine.best(med, "bf16")
    enc = flops.get("encoder")
    load = facts.get("load_average")
    lines = [
        f"Machine: {facts['cpu']}, {facts['usable_cores']} usable cores; ISA: "
        f"{', '.join(facts.get('isa', [])) or 'none detected'} (flags {' '.join(facts['flags'])}); "
        f"{facts['os']}." + (f" Load average at start {load[0]:.1f} (1 min), at the end "
                             f"{facts['load_average_after'][0]:.1f}." if load and facts.get(
                                 'load_average_after') else ""),
        "Matmul peak, median of the rounds (GFLOPS): " + ", ".join(f"{k} {v:.0f}" for k, v in med.items())
        + "." + (f" Graph FLOPs counted on the traced model: encoder {enc:.1f} GFLOP"
                 + (f", decoder (1 point) {flops['decoder_1']:.2f} GFLOP" if flops.get("decoder_1") else "")
                 + "." if enc else " (no FLOP counts: limit columns empty)")
        + (f" Encoder compute limit: fp32 {enc / fp32 * 1e3:.0f} ms" if enc and fp32 else "")
        + (f", bf16 {enc / bf16 * 1e3:.0f} ms" if enc and bf16 else "") + ".",
        "",
        *tables(results, peaks, flops, derived),
        *goals(results, derived, facts),
    ]
    n = results[0].get("encoder", {}).get("runs", 0) if results else 0
    lines += ["", f"{n} interleaved rounds after a warm-up round (order rotating); per round each "
              "row ran the encoder graph and `set_image` once, per click 3 times, decoder (1 point) "
              "3 times. `vs` columns: median over rounds of the other row's time ÷ this row's (> 1: "
              "this row is faster). `× limit`: encoder time ÷ (graph FLOPs ÷ best matmul peak of "
              "the same round). `gated`: the bundle, as run, passed a parity gate (runtime "
              "precisions other than f32 need their own recorded gate). Random weights do not "
              "change latency."]
    return "\n".join(lines)


def plot(results: list[dict], path: Path, limit_ms: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in results]
    colours = ["#c0504d" if r.get("kind") == NAIVE else "#888" if r.get("kind") == TORCH
               else "#3b7dd8" for r in results]
    panels = (("encoder", "encoder graph p50 (ms)"), ("set_image", "set_image p50 (ms)"),
              ("predict", "per click p50 (ms): 1 point, 3 masks (naive: its 1 best)"))
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.42 * len(names) + 2.2), sharey=True)
    for ax, (op, title) in zip(axes, panels):
        vals = [_p50(r, op) or 0.0 for r in results]
        bars = ax.barh(names, vals, color=colours)
        ax.bar_label(bars, fmt="%.0f" if max(vals) > 50 else "%.1f", padding=2, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, max(vals) * 1.18 or 1)
        if op == "encoder" and limit_ms:
            ax.axvline(limit_ms, color="k", ls="--", lw=1)
            ax.text(limit_ms, len(names) - 0.5, " fp32 limit", fontsize=8, va="top")
    axes[0].invert_yaxis()
    fig.suptitle("red: naive export (upstream code, torch.onnx defaults, onnxruntime defaults); "
                 "grey: eager PyTorch; blue: bundles — all interleaved in one run", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, results: list[dict], facts: dict, peaks: list[dict], flops: dict) -> str:
    out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(results, facts, peaks, flops)
    (out / "report.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps(
        {"machine": facts, "flops_gflop": flops, "matmul_peak_gflops_per_round": peaks,
         "results": results}, indent=2))
    med = {k: float(np.median([p[k] for p in peaks])) for k in (peaks[0] if peaks else {})}
    fp32 = machine.best(med, "fp32")
    try:
        plot(results, out / "latency.png",
             flops["encoder"] / fp32 * 1e3 if flops.get("encoder") and fp32 else None)
    except ImportError:
        md += "\n\n(matplotlib not installed: no plot)"
    return md
