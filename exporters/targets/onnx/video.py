"""The ONNX writer of video bundles (``edge_sam_sdk.video.export``): one graph per file.

Every video target's ``video.py`` has this interface: ``SUFFIX``, ``RUNTIME`` (the backend of
``edge_sam_sdk.runtimes`` that runs the files), ``PRECISIONS``, ``check(precision)`` before
any work, and ``export_video_graph(module, spec, feed, path, precision)`` returning the
graph's manifest facts.
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

SUFFIX = ".onnx"
RUNTIME = "onnxruntime"
PRECISIONS = ("fp32",)


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
