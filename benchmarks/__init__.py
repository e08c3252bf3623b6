"""On-device benchmark of exported bundles: needs only `runtimes` + the runtime library (torch,
when present, adds the eager PyTorch baseline measured in the same run)."""
