"""mobilesam-bench BUNDLE... — latency, memory and size of exported bundles on this device.

Needs only mobilesam-runtime and each bundle's runtime library. Every bundle (OpenVINO: at f32
and bf16 inference precision) is loaded in its own worker process (its own cold start and peak
RSS); then all workers are timed **interleaved**, run by run (A, B, C, A, B, C, ...; the order
rotates every round), with the matrix-multiply peak measured in every round beside them, so
that a shared or throttling host slows every row alike and ratios stay meaningful.
A bundle may carry backend options for an A/B comparison: `exports/onnx-fp32::threads=1`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import machine, report
from .measure import BATCH, PROMPT_COUNTS

MEASURE = "mobilesam_runtime.bench.measure"
# per round: (op, runs); decoder_1 and predict get more runs (they are short)
PLAN = (("encoder", 1), ("set_image", 1), ("predict", 3), ("predict_single", 1), ("decoder_1", 3),
        *((f"decoder_{n}", 1) for n in PROMPT_COUNTS[1:]), ("preprocess", 1),
        (f"predict_batch_{BATCH}", 1))
GAP_S = 0.02  # idle time between two workers' runs (lets spinning thread pools go to sleep)


class Worker:
    """One target in its own process (see measure.py for the protocol)."""

    def __init__(self, module: str, target: str, args: argparse.Namespace, options: list[str] = ()):
        cmd = [sys.executable, "-m", module, target, "--serve"]
        if args.image:
            cmd += ["--image", str(args.image)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        for o in options:
            cmd += ["--option", o]
        self.label = " ".join([target, *options])
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1)
        self.info = self._read()["ready"]
        self.failed = False
        self.rounds: dict[str, list[list[float]]] = {}
        self.splits: dict[str, list[float]] = {}

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.log.seek(0)
            raise RuntimeError(f"benchmark worker {self.label} failed:\n{self.log.read()[-3000:]}")
        return json.loads(line)

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def time(self, what: str, n: int) -> None:
        reply = self.ask(op="time", what=what, n=n)
        if "s" in reply:
            self.rounds.setdefault(what, []).append(reply["s"])
            for s in reply["split"]:
                for k, v in s.items():
                    self.splits.setdefault(f"{what}.{k}", []).append(v)

    def result(self) -> dict:
        from .measure import stats

        res = dict(self.info)
        for op, rounds in self.rounds.items():
            res[op] = stats([s for r in rounds for s in r])
            res.setdefault("per_round_ms", {})[op] = [float(np.median(r)) * 1e3 for r in rounds]
        res["splits_ms"] = {k: float(np.median(v)) * 1e3 for k, v in self.splits.items()}
        res["peak_rss_mb"] = self.ask(op="rss")["peak_rss_mb"]
        return res

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def bundle_variants(bundle: str) -> list[tuple[str, list[str]]]:
    """(folder, backend options) a bundle argument is measured with."""
    folder, _, opts = bundle.partition("::")
    options = [o for o in opts.split(",") if o]
    if options:
        return [(folder, options)]
    fmt = json.loads((Path(folder) / "manifest.json").read_text())["format"]
    return [(folder, ["precision=f32"]), (folder, ["precision=bf16"])] if fmt == "openvino" \
        else [(folder, [])]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="*", help="bundle folders (OUT/FORMAT-QUANT[::key=value,...])")
    p.add_argument("--out", default="bench-results", help="report folder")
    p.add_argument("--image", default=None, help="test photo (default: the packaged truck.jpg)")
    p.add_argument("--runs", type=int, default=10, help="timed rounds (each: every op of every "
                                                        "target; decoder_1 and predict 3 runs)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: runtime's)")


def start(specs: list[tuple[str, str, list[str]]], args) -> tuple[list[Worker], list[str]]:
    """Start the workers one after the other (cold starts do not overlap)."""
    workers, failed = [], []
    for module, target, options in specs:
        print(f"loading {target} {' '.join(options)}", file=sys.stderr)
        try:
            workers.append(Worker(module, target, args, options))
        except (RuntimeError, json.JSONDecodeError) as e:
            print(e, file=sys.stderr)
            failed.append(" ".join([target, *options]))
    return workers, failed


def measure_all(workers: list[Worker], runs: int, peak: machine.MatmulPeak) -> list[dict]:
    """Warm-up round, then `runs` interleaved rounds; the peak is measured around every round's
    encoder runs. Returns the per-round peaks."""
    peaks = []
    for r in range(runs + 1):
        order = workers[r % len(workers):] + workers[: r % len(workers)]
        print(f"round {r}/{runs}{' (warm-up)' if r == 0 else ''}", file=sys.stderr)
        before = peak.measure()
        for op, n in PLAN:
            for w in order:
                if w.failed:
                    continue
                try:
                    w.time(op, 1 if r == 0 else n)
                except (RuntimeError, BrokenPipeError, json.JSONDecodeError) as e:
                    print(f"dropped {w.label}: {e}", file=sys.stderr)
                    w.failed = True
                time.sleep(GAP_S)
            if op == "encoder":
                after = peak.measure()
        if r == 0:
            for w in workers:
                w.rounds.clear()
                w.splits.clear()
        else:
            peaks.append({k: max(before[k], after[k]) for k in before})
    return peaks


def run(bundles: list[str], args: argparse.Namespace, extra: list[tuple[str, str]] = (),
        flops: dict | None = None) -> int:
    """Measure the `extra` (module, target) workers and every bundle interleaved; write the report.
    `flops` (GFLOP of each graph, counted by the harness) turns on the compute-limit columns."""
    facts = machine.cpu_facts()
    specs = [(m, t, []) for m, t in extra]
    specs += [(MEASURE, folder, opts) for b in bundles for folder, opts in bundle_variants(b)]
    workers, failed = start(specs, args)
    try:
        peak = machine.MatmulPeak()
        peaks = measure_all(workers, args.runs, peak)
        results = [w.result() for w in workers if not w.failed]
        failed += [w.label for w in workers if w.failed]
    finally:
        for w in workers:
            w.close()
    facts["load_average_after"] = list(machine.os.getloadavg()) if hasattr(machine.os, "getloadavg") \
        else None
    print(report.write(Path(args.out), results, facts, peaks, flops or {}))
    print(f"\nwrote {args.out}/report.md, results.json, latency.png", file=sys.stderr)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mobilesam-bench", description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    if not args.bundles:
        p.error("give at least one bundle folder")
    return run(args.bundles, args)


if __name__ == "__main__":
    sys.exit(main())
