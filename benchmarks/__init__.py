"""The repository's benchmark harness: `mobilesam_runtime.bench` (torch-free, runs on any device)
plus the eager PyTorch baseline measured in the same run and export-all."""
