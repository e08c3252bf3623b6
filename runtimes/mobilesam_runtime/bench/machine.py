"""Facts about the machine a benchmark ran on (ISA, cores, libraries), its matrix-multiply peak
by the fastest library installed, and peak RSS (right on Linux and macOS)."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from importlib import metadata

import numpy as np

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
         "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd", "asimddp", "bf16", "i8mm", "sve")
# ISA features that decide which goals apply: name -> any of these /proc/cpuinfo flags
ISA = {"AVX2": ("avx2",), "AVX-512": ("avx512f",), "VNNI": ("avx512_vnni", "avx_vnni", "asimddp"),
       "BF16": ("avx512_bf16", "amx_bf16", "bf16"), "AMX": ("amx_tile", "amx_bf16", "amx_int8"),
       "FP16": ("avx512_fp16",), "NEON": ("neon", "asimd")}
LIBS = ("numpy", "onnxruntime", "openvino", "ai-edge-litert", "coremltools", "torch")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine(), "x86_64"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")):
                    flags |= set(line.split(":", 1)[1].split())
    except OSError:  # macOS: Apple silicon has NEON, dot product and bf16 (M2+) but no cpuinfo
        if sys.platform == "darwin" and platform.machine() == "arm64":
            flags |= {"neon", "asimd", "asimddp"}
    return model, flags


def cpu_facts() -> dict:
    """CPU model, core counts, SIMD flags and ISA summary, OS and library versions."""
    model, flags = _cpuinfo()
    versions = {}
    for lib in LIBS:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "logical_cores": os.cpu_count(), "usable_cores": usable,
            "flags": [f for f in FLAGS if f in flags],
            "isa": [name for name, any_of in ISA.items() if flags & set(any_of)],
            "os": platform.platform(), "python": platform.python_version(), "versions": versions,
            "load_average": list(load) if load else None}


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB. Linux: VmHWM of this address space (ru_maxrss
    would carry the parent's high-water mark across fork+exec, in KiB); elsewhere ru_maxrss,
    which is bytes on macOS and KiB on other Unixes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2 ** 20 if sys.platform == "darwin" else rss / 1024


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


class MatmulPeak:
    """n x n fp32 matmul through every library installed here (numpy's BLAS, onnxruntime,
    OpenVINO f32 and bf16); `measure()` returns GFLOPS per library. Built once, measured
    many times (beside every bundle's runs)."""

    def __init__(self, n: int = 2048) -> None:
        self.n = n
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        self.kernels: dict[str, Callable[[], object]] = {"numpy_fp32": lambda: self.a @ b}
        self._onnxruntime(b)
        self._openvino(b)
        for fn in self.kernels.values():  # warm-up (JIT, caches, thread pools)
            fn()

    def _onnxruntime(self, b: np.ndarray) -> None:
        try:  # building the one-node graph needs the onnx package (not a runtime dependency)
            import onnxruntime as ort
            from onnx import TensorProto, helper, numpy_helper
        except ImportError:
            return
        n = self.n
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "b"], ["y"])], "peak",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
            [numpy_helper.from_array(b, "b")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self.kernels["onnxruntime_fp32"] = lambda: sess.run(None, {"x": self.a})

    def _openvino(self, b: np.ndarray) -> None:
        try:
            import openvino as ov
            import openvino.opset13 as ops
        except ImportError:
            return
        x = ops.parameter([self.n, self.n], np.float32, name="x")
        model = ov.Model([ops.matmul(x, ops.constant(b), False, False)], [x])
        core = ov.Core()
        for hint in ("f32", "bf16"):
            try:
                req = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                        "PERFORMANCE_HINT": "LATENCY"}
                                         ).create_infer_request()
            except RuntimeError:  # no bf16 on this CPU
                continue
            if hint == "bf16" and req.get_compiled_model().get_property(
                    "INFERENCE_PRECISION_HINT").to_string() != "bf16":
                continue  # the plugin fell back to f32: not a bf16 peak
            self.kernels[f"openvino_{hint}"] = lambda r=req: r.infer({0: self.a})

    def measure(self, repeats: int = 3) -> dict[str, float]:
        flops = 2.0 * self.n ** 3
        return {k: flops / _best_seconds(fn, repeats) / 1e9 for k, fn in self.kernels.items()}


def best(peaks: dict[str, float], family: str) -> float | None:
    """The fastest library's GFLOPS for `family` ("fp32" or "bf16")."""
    suffixes = ("_fp32", "_f32") if family == "fp32" else (f"_{family}",)
    vals = [v for k, v in peaks.items() if k.endswith(suffixes)]
    return max(vals, default=None)


def matmul_peak(n: int = 2048) -> dict[str, float]:
    """GFLOPS of an n x n matmul per library (one-off; the benchmark keeps a MatmulPeak)."""
    return MatmulPeak(n).measure()
