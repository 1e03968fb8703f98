"""ONNX target: torch.onnx export + onnxsim, onnxruntime NCHWc rewrites, fp16 and int8 QDQ graphs."""
