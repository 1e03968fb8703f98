"""The ONNX writer of video bundles (``edge_sam_sdk.video.export``): one graph per file.

Every video target's ``video.py`` has this interface: ``SUFFIX``, ``RUNTIME`` (the backend of
``edge_sam_sdk.runtimes`` that runs the files), ``PRECISIONS``, ``check(precision)`` before
any work, and ``export_video_graph(module, spec, feed, path, precision)`` returning the
graph's manifest facts. A writer that makes a reduced precision from the fp32 file (checked
against torch first) also has ``reduce_video_graph(src, dst, feeds, precision)``.

fp16 here: float16 weights and arithmetic with float32 inputs and outputs. The overflow-prone
ops, and every node that makes or reads a tensor above ``FP16_MAX_ABS`` on the calibration
feeds, stay float32 (:func:`.quantization.to_fp16`, as for image bundles). A graph that then
drifts from torch along the calibration track stays fp32 as a whole
(``edge_sam_sdk.video.calibration``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.graphs import GraphSpec

from .export import export_onnx
from .quantization import to_fp16

SUFFIX = ".onnx"
RUNTIME = "onnxruntime"
PRECISIONS = ("fp32", "fp16")


def check(precision: str) -> None:
    """Refuse an unsupported precision or a missing package before any work."""
    if precision not in PRECISIONS:
        raise EdgeSamError(f"precision {precision!r} is not supported for onnx video bundles "
                           f"(supported: {', '.join(PRECISIONS)})")
    missing = [m for m in ("onnx", "onnxsim", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgeSamError(f"target onnx needs {', '.join(missing)}, which is not installed; "
                           "install it with: pip install 'edgesam[export]'")


def export_video_graph(module: nn.Module, spec: GraphSpec, feed: dict[str, np.ndarray], path: Path,
                       precision: str = "fp32") -> dict[str, Any]:
    """Write ``module`` to ``path`` as ``spec`` says (static shapes, simplified)."""
    return export_onnx(module, spec, feed, path)


def reduce_video_graph(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]],
                       precision: str) -> dict[str, Any]:
    """Write ``precision`` (fp16) of the checked fp32 graph ``src`` to ``dst``, its float32
    nodes chosen by the ranges over ``feeds``; manifest facts."""
    return {precision: to_fp16(src, dst, feeds) | {"range_feeds": len(feeds)}}
