"""Values of small ONNX ``Constant`` nodes and initializers, and onnxsim's onnxruntime-only
fusions: shared by the ONNX export, its NCHWc rewrites and the TensorRT readiness check
(pure onnx protobuf, no torch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Tensors up to this many elements are read (TensorRT shape tensors hold at most 64 values).
SMALL = 64
#: onnxsim passes that fuse standard ops into onnxruntime ``com.microsoft`` ops; TensorRT-ready
#: exports skip them (see ``exporters.targets.onnx.export.export_onnx(skipped_optimizers=...)``).
ORT_FUSIONS = ("fuse_attention", "fuse_gqa")


def constant_value(node: Any) -> np.ndarray | None:
    """The value of a small ``Constant`` node (``value`` tensor or ``value_int(s)/float(s)``)."""
    import onnx

    for a in node.attribute:
        if a.name == "value":
            return to_array(a.t) if math.prod(a.t.dims) <= SMALL else None
        if a.name in ("value_int", "value_ints", "value_float", "value_floats"):
            return np.asarray(onnx.helper.get_attribute_value(a))
    return None


def to_array(tensor: Any) -> np.ndarray | None:
    from onnx import numpy_helper

    if tensor.data_location == 1 or (not tensor.raw_data and tensor.external_data):
        return None  # external data not loaded
    try:
        return np.asarray(numpy_helper.to_array(tensor))
    except Exception:
        return None
