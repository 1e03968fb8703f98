"""Export targets, one subpackage each, looked up by name in :data:`TARGETS`.

``onnx/`` (onnxruntime graphs, fp16/int8), ``tensorrt/`` (engines and the readiness check),
``coreml/`` (mlprogram packages), ``tflite/`` (LiteRT graphs). Each has a ``target.py``
implementing :class:`.base.ExportTarget`; the shared pipeline is :mod:`..export`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.registry import VariantSpec

from .base import ExportTarget, Progress
from .coreml.target import CoreMLTarget
from .onnx.target import OnnxTarget
from .tensorrt.target import TensorRTTarget
from .tflite.target import TfliteTarget

__all__ = ["TARGETS", "ExportTarget", "make_target"]

TARGETS: dict[str, type[ExportTarget]] = {"onnx": OnnxTarget, "tensorrt": TensorRTTarget,
                                          "coreml": CoreMLTarget, "tflite": TfliteTarget}


def make_target(target: str, spec: VariantSpec, precision: str, options: Mapping[str, Any],
                say: Progress) -> ExportTarget:
    """The target ``target`` for ``spec``, its precision, options and packages checked."""
    if target not in TARGETS:
        raise EdgeSamError(f"unknown target {target!r}; supported: {sorted(TARGETS)}")
    if target not in spec.targets:
        raise EdgeSamError(f"variant {spec.name} does not support target {target!r} "
                           f"(supported: {list(spec.targets)})")
    return TARGETS[target](spec, precision, options, say)

