"""Core ML backend (extra ``coreml``): runs ``.mlpackage`` graphs with ``MLModel.predict``.

Core ML executes only on macOS; on any other system the constructor raises
``BackendNotAvailableError`` saying so (the packages can still be exported and inspected
there). Numpy in, numpy out, float32, names as in the bundle manifest. This module does not
import torch (coremltools itself imports torch when it is installed).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .protocol import check_feed

#: ``compute_units`` option -> ``coremltools.ComputeUnit`` member.
COMPUTE_UNITS = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU",
                 "cpu_and_ne": "CPU_AND_NE"}


def ensure_macos() -> None:
    """Raise ``BackendNotAvailableError`` unless this is macOS (where Core ML exists)."""
    if sys.platform != "darwin":
        from edge_sam_sdk.errors import BackendNotAvailableError

        raise BackendNotAvailableError(
            f"Core ML runs only on macOS; this machine runs {platform.system() or sys.platform}. "
            "Copy the bundle to a Mac (or an iOS app) to run it, or export --target onnx to run here")


class CoreMLBackend:
    """Run one ``.mlpackage`` graph with Core ML (macOS only).

    Args:
        path: the ``.mlpackage`` folder.
        compute_units: ``"all"`` (default: CPU, GPU and Neural Engine), ``"cpu_only"``,
            ``"cpu_and_gpu"`` or ``"cpu_and_ne"``.
        threads: accepted for interface parity with the other backends and ignored
            (Core ML schedules its own threads).
    """

    name = "coreml"

    def __init__(self, path: str | Path, compute_units: str = "all", threads: int | None = None):
        from edge_sam_sdk.errors import InputError

        ensure_macos()
        if compute_units not in COMPUTE_UNITS:
            raise InputError(f"unknown compute_units {compute_units!r}; known: {sorted(COMPUTE_UNITS)}")
        import coremltools as ct

        self.path = Path(path)
        units = getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units])
        try:
            self.model: Any = ct.models.MLModel(str(self.path), compute_units=units)
        except Exception as exc:  # coremltools raises anything from RuntimeError to protobuf errors
            from edge_sam_sdk.errors import BundleError

            reason = " ".join(str(exc).split())[:300]
            raise BundleError(f"{self.path.name} is not a loadable Core ML package ({reason}); "
                              "re-export the bundle") from None
        desc = self.model.get_spec().description
        self.inputs: list[str] = [f.name for f in desc.input]
        self.outputs: list[str] = [f.name for f in desc.output]
        self.ranges: dict[str, list[tuple[int, int]]] = {f.name: _ranges(f) for f in desc.input}

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every input as a float32 array within the package's shape ranges -> every output."""
        check_feed(self, feed)
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feed.items()}
        for name, array in arrays.items():
            check_shape(name, array.shape, self.ranges[name])
        out = self.model.predict(arrays)
        return {n: np.asarray(out[n], dtype=np.float32) for n in self.outputs}


def _ranges(feature: Any) -> list[tuple[int, int]]:
    arr = feature.type.multiArrayType
    if arr.shapeRange.sizeRanges:
        return [(int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges]
    return [(int(d), int(d)) for d in arr.shape]


def check_shape(name: str, shape: tuple[int, ...], ranges: list[tuple[int, int]]) -> None:
    """Raise ``InputError`` naming the axis when ``shape`` is outside ``ranges`` (hi -1: unbounded)."""
    from edge_sam_sdk.errors import InputError

    if len(shape) != len(ranges):
        raise InputError(f"coreml: input {name} has shape {tuple(shape)}, expected {len(ranges)} axes "
                         f"with sizes {ranges}")
    for axis, (size, (lo, hi)) in enumerate(zip(shape, ranges, strict=True)):
        if size < lo or (hi >= 0 and size > hi):
            raise InputError(f"coreml: input {name} axis {axis} has size {size}; this package takes "
                             f"{lo}..{hi} (re-export with larger --max-prompts/--max-points for more)")
