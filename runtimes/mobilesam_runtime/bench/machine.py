"""Facts about the machine a benchmark ran on, and its matrix-multiply peak."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata

import numpy as np

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
         "avx_vnni", "neon", "asimd", "sve")
LIBS = ("numpy", "onnxruntime", "openvino", "ai-edge-litert", "coremltools", "torch")


def cpu_facts() -> dict:
    """CPU model, core counts, SIMD flags, OS and library versions."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine(), "x86_64"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")):
                    flags |= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    versions = {}
    for lib in LIBS:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": model, "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "flags": [f for f in FLAGS if f in flags], "os": platform.platform(),
            "python": platform.python_version(), "versions": versions}


def _best_seconds(fn, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_peak(n: int = 2048) -> dict:
    """GFLOPS of an n x n matmul: fp32 and bf16 through OpenVINO's CPU plugin when installed
    (the same kernels family the encoders use), numpy fp32 otherwise."""
    flops = 2.0 * n ** 3
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    out = {"numpy_fp32": flops / _best_seconds(lambda: a @ a) / 1e9}
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return out
    x = ops.parameter([n, n], np.float32, name="x")
    model = ov.Model([ops.matmul(x, ops.constant(a), False, False)], [x])
    core = ov.Core()
    for hint in ("f32", "bf16"):
        try:
            req = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint}).create_infer_request()
        except RuntimeError:
            continue
        out[f"openvino_{hint}"] = flops / _best_seconds(lambda r=req: r.infer({0: a})) / 1e9
    return out
