"""mobilesam-export: MobileSAM's encoder and prompt decoder as two graphs for ONNX, CoreML,
TFLite (LiteRT) and OpenVINO, with parity checks against the PyTorch reference."""

__version__ = "0.1.0"
