"""TensorRT target: engines from TensorRT-ready ONNX graphs, and the readiness check (no TensorRT needed)."""
