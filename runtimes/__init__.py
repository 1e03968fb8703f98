"""Runtime backends behind one protocol (:class:`Backend`): numpy in, numpy out.

Each backend lives in its own small module and is imported only when asked for, so a
missing engine never breaks the others. ``open_graph`` picks by name or by file suffix.
"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol import Backend, check_feed


@dataclass(frozen=True)
class BackendInfo:
    name: str
    target: str  #: bundle target whose graphs this backend runs
    module: str  #: "module:Class", relative to this package
    requires: str  #: the imports that must succeed, comma-separated ("a|b": either one)
    extra: str  #: pip extra that installs it
    suffixes: tuple[str, ...]
    note: str = ""  #: appended to the install hint
    platforms: tuple[str, ...] = ()  #: ``sys.platform`` values it runs on (empty: any)


BACKENDS: dict[str, BackendInfo] = {
    "onnxruntime": BackendInfo("onnxruntime", "onnx", ".onnxruntime_backend:OnnxRuntimeBackend",
                               "onnxruntime", "onnx", (".onnx",)),
    "torch": BackendInfo("torch", "torch", ".torch_backend:TorchBackend", "torch", "export", ()),
    "tensorrt": BackendInfo("tensorrt", "tensorrt", ".tensorrt_backend:TensorRTBackend", "tensorrt,pycuda",
                            "tensorrt", (".engine",), " (on Jetson use the JetPack TensorRT)"),
    "coreml": BackendInfo("coreml", "coreml", ".coreml_backend:CoreMLBackend", "coremltools", "coreml",
                          (".mlpackage",), platforms=("darwin",)),
    "tflite": BackendInfo("tflite", "tflite", ".tflite_backend:TfliteBackend",
                          "ai_edge_litert.interpreter|tflite_runtime.interpreter", "tflite", (".tflite",)),
}

#: Default backend of each bundle target.
TARGET_BACKENDS = {info.target: name for name, info in BACKENDS.items()}


def backend_for_target(target: str) -> str:
    from edge_sam_sdk.errors import BundleError

    try:
        return TARGET_BACKENDS[target]
    except KeyError:
        raise BundleError(f"no runtime backend for target {target!r}; "
                          f"known: {sorted(TARGET_BACKENDS)}") from None


def backend_class(name: str) -> Any:
    """The backend class ``name``; a missing package raises ``BackendNotAvailableError``."""
    from edge_sam_sdk.errors import BackendNotAvailableError

    if name not in BACKENDS:
        raise BackendNotAvailableError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}")
    info = BACKENDS[name]
    if info.platforms and sys.platform not in info.platforms:
        names = {"darwin": "macOS", "linux": "Linux", "win32": "Windows"}
        raise BackendNotAvailableError(
            f"backend {name!r} runs only on {' or '.join(names.get(p, p) for p in info.platforms)}; "
            f"this machine runs {platform.system() or sys.platform}")
    missing = missing_packages(name)
    if missing:
        hint = ("pip install torch==2.13.0 'edgesam[export]'" if info.extra == "export"
                else f"pip install 'edgesam[{info.extra}]'")
        needs = " and ".join(repr(m) for m in missing)
        raise BackendNotAvailableError(
            f"backend {name!r} needs the package{'s' if len(missing) > 1 else ''} {needs}, which "
            f"{'are' if len(missing) > 1 else 'is'} not installed; install it with: {hint}{info.note}")
    module_name, cls = info.module.split(":")
    return getattr(importlib.import_module(module_name, __name__), cls)


def missing_packages(name: str) -> list[str]:
    """The packages backend ``name`` needs that do not import here (``[]``: all present)."""
    return [need.replace("|", " or ") for need in BACKENDS[name].requires.split(",")
            if not any(_importable(m) for m in need.split("|"))]


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except (ImportError, OSError):  # OSError: a wheel whose native library is missing
        return False
    return True


def open_graph(path: str | Path, backend: str = "auto", **options: Any) -> Backend:
    """Load one graph file with ``backend`` (``"auto"``: chosen by the file suffix)."""
    path = Path(path)
    if backend == "auto":
        matches = [n for n, i in BACKENDS.items() if path.suffix in i.suffixes]
        if not matches:
            from edge_sam_sdk.errors import InputError

            raise InputError(f"no backend runs {path.name!r} files")
        backend = matches[0]
    instance: Backend = backend_class(backend)(path, **options)
    return instance


__all__ = ["BACKENDS", "Backend", "BackendInfo", "backend_class", "backend_for_target",
           "check_feed", "missing_packages", "open_graph"]
