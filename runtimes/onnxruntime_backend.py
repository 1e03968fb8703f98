"""onnxruntime backend (extra ``onnx``): CPU by default, providers and threads selectable."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .protocol import check_feed


class OnnxRuntimeBackend:
    """Run an ``.onnx`` graph with onnxruntime.

    Args:
        path: the ``.onnx`` file (external data next to it is found automatically).
        providers: execution providers, default ``["CPUExecutionProvider"]``.
        threads: intra-op threads (``None``: onnxruntime's default, all cores).
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None,
                 threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        available = ort.get_available_providers()
        chosen = list(providers) if providers else ["CPUExecutionProvider"]
        unknown = [p for p in chosen if p not in available]
        if unknown:
            from edge_sam_sdk.errors import BackendNotAvailableError

            raise BackendNotAvailableError(
                f"onnxruntime providers {unknown} are not available here (available: {available})")
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        except Exception as exc:  # InvalidProtobuf, Fail, NoSuchFile...: onnxruntime's pybind errors
            from edge_sam_sdk.errors import BundleError

            reason = " ".join(str(exc).split())
            reason = reason if len(reason) <= 300 else reason[:297] + "..."
            raise BundleError(f"{self.path.name} is not a loadable ONNX graph ({type(exc).__name__}: "
                              f"{reason}); re-export the bundle") from None
        self.inputs: list[str] = [i.name for i in self.session.get_inputs()]
        self.outputs: list[str] = [o.name for o in self.session.get_outputs()]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feed(self, feed)
        values = self.session.run(self.outputs, {k: np.ascontiguousarray(v) for k, v in feed.items()})
        return dict(zip(self.outputs, values, strict=True))
