"""One module per format, each importing only its own runtime library (loaded lazily)."""

BACKENDS = {
    "onnx": "runtimes.backends.onnx",
    "openvino": "runtimes.backends.openvino",
    "coreml": "runtimes.backends.coreml",
    "tflite": "runtimes.backends.tflite",
}
