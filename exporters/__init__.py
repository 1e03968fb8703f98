"""Torch side: our re-implementations of each variant and the per-target exporters.

Needs the ``export`` extra (torch, onnx, onnxsim): ``pip install torch==2.13.0 'edgesam[export]'``.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover - exercised only without torch
    from edge_sam_sdk.errors import BackendNotAvailableError

    raise BackendNotAvailableError(
        "exporting needs torch, which is not installed; install it with: "
        "pip install torch==2.13.0 'edgesam[export]'") from None
