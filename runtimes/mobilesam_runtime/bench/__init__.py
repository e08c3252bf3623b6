"""On-device benchmark of exported bundles with the runtime alone (no torch, no exporter):

    pip install "mobilesam-runtime[onnx]"
    mobilesam-bench exports/onnx-fp32          # or python -m mobilesam_runtime.bench

Each bundle runs in its own child process (its own peak RSS and cold start). The repository's
`benchmarks/` adds the eager PyTorch baseline and export-all on top of this."""
