"""Model execution on the device: ONNX Runtime sessions, providers, batching and offline optimization."""
