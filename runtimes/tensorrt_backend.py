"""TensorRT backend (extra ``tensorrt``: tensorrt + pycuda): serialized ``.engine`` files.

Engines only run with the TensorRT version and on the GPU they were built with. A bundle's
manifest records both (``manifest["tensorrt"]``: ``version``, ``gpu.name``,
``gpu.compute_capability``); an engine whose bundle records other ones is refused with a
message saying how to rebuild it here, instead of TensorRT's deserialization error.

Runs with TensorRT >= 8.5's name-based API (8.6 and 10.x): one optimization profile,
``set_input_shape`` per call (dynamic prompt count ``B`` and points ``N``), page-locked
host buffers, device buffers grown on demand, async copies and ``execute_async_v3`` on one
CUDA stream. CUDA calls run in the device's primary context, the one TensorRT itself uses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.errors import BackendNotAvailableError, BundleError, EdgeSamError, InputError

from .protocol import check_feed

REBUILD_HINT = ("TensorRT engines only run where they were built: rebuild them on this machine with "
                "'bash trtexec.sh' in the bundle folder (it holds the ONNX graphs) or with "
                "'edgesam export --target tensorrt'")


def device_facts(device: int = 0) -> dict[str, Any]:
    """``{"version": TensorRT version, "gpu": {"name", "compute_capability"}}`` of this machine.

    Raises ``BackendNotAvailableError`` when no CUDA device is visible.
    """
    import tensorrt as trt

    try:
        import pycuda.driver as cuda

        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:  # no libcuda (ImportError/OSError), or pycuda's own errors
        raise BackendNotAvailableError(f"no usable NVIDIA GPU: CUDA initialization failed ({exc})") from None
    if device >= count:
        raise BackendNotAvailableError(f"CUDA device {device} not found ({count} visible)")
    dev = cuda.Device(device)
    major, minor = dev.compute_capability()
    return {"version": str(trt.__version__), "gpu": {"name": str(dev.name()),
                                                      "compute_capability": f"{major}.{minor}"}}


def compatibility_problem(recorded: dict[str, Any] | None, current: dict[str, Any],
                          allow_other_gpu: bool = False) -> str | None:
    """Why an engine built with ``recorded`` facts cannot run with ``current`` ones, or ``None``.

    Both are :func:`device_facts` dicts. The TensorRT version must match exactly, and so must
    the GPU (name and compute capability); ``allow_other_gpu`` accepts another GPU of the same
    compute capability (TensorRT runs such engines, with a warning and maybe slower kernels).
    ``recorded=None`` (an engine without a manifest) is accepted.
    """
    if not recorded:
        return None
    gpu = recorded.get("gpu")
    rec_gpu: dict[str, Any] = gpu if isinstance(gpu, dict) else {}
    cur_gpu = current["gpu"]
    diffs = []
    if recorded.get("version") != current["version"]:
        diffs.append(f"TensorRT {recorded.get('version')} (here {current['version']})")
    if rec_gpu.get("compute_capability") != cur_gpu["compute_capability"]:
        diffs.append(f"compute capability {rec_gpu.get('compute_capability')} "
                     f"(here {cur_gpu['compute_capability']})")
    if rec_gpu.get("name") != cur_gpu["name"] and not allow_other_gpu:
        diffs.append(f"GPU {rec_gpu.get('name')!r} (here {cur_gpu['name']!r})")
    if not diffs:
        return None
    return f"the engine was built with {', '.join(diffs)}"


def recorded_facts(engine: Path) -> dict[str, Any] | None:
    """The build facts the bundle manifest next to ``engine`` records (``None`` without one)."""
    manifest = engine.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        facts = json.loads(manifest.read_text(encoding="utf-8")).get("tensorrt")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise BundleError(f"{manifest} is corrupt: {exc}") from None
    return facts if isinstance(facts, dict) else None


@contextlib.contextmanager
def cuda_context(device: int = 0, ctx: Any = None) -> Iterator[Any]:
    """Make ``device``'s primary CUDA context (TensorRT's own) current for the block.

    ``ctx``: a context this yielded before, to push again without retaining it anew.
    """
    import pycuda.driver as cuda

    if ctx is None:
        cuda.init()
        ctx = cuda.Device(device).retain_primary_context()
    ctx.push()
    try:
        yield ctx
    finally:
        cuda.Context.pop()


class _Buffer:
    """A page-locked host array and a device allocation of at least ``nbytes``, grown on demand."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.capacity = 0
        self.host: Any = None
        self.device: Any = None

    def ensure(self, count: int) -> None:
        import pycuda.driver as cuda

        if count > self.capacity:
            self.capacity = max(count, 1)
            self.host = cuda.pagelocked_empty(self.capacity, self.dtype)
            self.device = cuda.mem_alloc(self.capacity * self.dtype.itemsize)


class TensorRTBackend:
    """Run a serialized TensorRT engine (``.engine``) on an NVIDIA GPU.

    Args:
        path: the engine file; a ``manifest.json`` beside it (the bundle's) is read for the
            TensorRT version and GPU the engine was built with.
        device: CUDA device index.
        allow_other_gpu: accept another GPU of the recorded compute capability.
        threads: accepted like the CPU backends' option (``--threads``) and unused.
    """

    name = "tensorrt"

    def __init__(self, path: str | Path, device: int = 0, allow_other_gpu: bool = False,
                 threads: int | None = None):
        import pycuda.driver as cuda
        import tensorrt as trt

        self.path = Path(path)
        if not self.path.is_file():
            raise BundleError(f"TensorRT engine not found: {self.path}")
        current = device_facts(device)
        problem = compatibility_problem(recorded_facts(self.path), current, allow_other_gpu)
        if problem:
            raise BundleError(f"{self.path}: {problem}; {REBUILD_HINT}")
        with cuda_context(device) as self._ctx:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise BundleError(f"TensorRT {current['version']} cannot deserialize {self.path} (built with "
                                  f"another TensorRT version or for another GPU?); {REBUILD_HINT}")
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs: list[str] = [n for n in names if is_input[n]]
        self.outputs: list[str] = [n for n in names if not is_input[n]]
        self._dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self._limits = {n: self._profile(n) for n in self.inputs}
        self._buffers = {n: _Buffer(self._dtypes[n]) for n in names}

    def _profile(self, name: str) -> list[tuple[int, ...]]:
        """``[min, opt, max]`` shapes of input ``name`` (its fixed shape when static)."""
        shape = tuple(self.engine.get_tensor_shape(name))
        if all(d >= 0 for d in shape):
            return [shape, shape, shape]
        return [tuple(d) for d in self.engine.get_tensor_profile_shape(name, 0)]

    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        lo, _opt, hi = self._limits[name]
        if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi, strict=True)):
            raise InputError(f"{self.name}: input {name!r} has shape {shape}; this engine's profile "
                             f"takes {lo} to {hi} (rebuild with larger --max-points/--max-prompts)")

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the engine on ``feed`` (every input, numpy); returns every output by name."""
        import pycuda.driver as cuda

        check_feed(self, feed)
        arrays = {n: np.ascontiguousarray(feed[n], dtype=self._dtypes[n]) for n in self.inputs}
        with cuda_context(ctx=self._ctx):
            for n, a in arrays.items():
                self._check_shape(n, a.shape)
                if not self.context.set_input_shape(n, a.shape):
                    raise InputError(f"{self.name}: TensorRT refused shape {a.shape} for input {n!r}")
                buf = self._buffers[n]
                buf.ensure(a.size)
                host = buf.host[:a.size]
                np.copyto(host, a.reshape(-1))
                cuda.memcpy_htod_async(buf.device, host, self.stream)
            shapes = {n: tuple(self.context.get_tensor_shape(n)) for n in self.outputs}
            for n, shape in shapes.items():
                if any(d < 0 for d in shape):
                    raise EdgeSamError(f"{self.name}: output {n!r} has unresolved shape {shape}")
                self._buffers[n].ensure(int(np.prod(shape)))
            for n, buf in self._buffers.items():
                self.context.set_tensor_address(n, int(buf.device))
            if not self.context.execute_async_v3(self.stream.handle):
                raise EdgeSamError(f"{self.name}: TensorRT failed to run {self.path.name}")
            for n, shape in shapes.items():
                buf = self._buffers[n]
                cuda.memcpy_dtoh_async(buf.host[:int(np.prod(shape))], buf.device, self.stream)
            self.stream.synchronize()
        return {n: self._buffers[n].host[:int(np.prod(s))].reshape(s).copy() for n, s in shapes.items()}


def adopt_engines(folder: str | Path, device: int = 0) -> dict[str, Any]:
    """Record engines rebuilt on this machine (by the bundle's ``trtexec.sh``) in its manifest.

    Each engine must deserialize here; then its sha256 and this machine's TensorRT version
    and GPU replace the recorded ones (``manifest["tensorrt"]["rebuilt"] = True``: the export
    parity figures were measured on the original engines; ``edgesam verify`` re-measures).
    Returns this machine's :func:`device_facts`.
    """
    import tensorrt as trt

    from edge_sam_sdk.bundle import bundle_file, read_manifest, sha256_tree, write_manifest

    root = Path(folder)
    manifest = read_manifest(root)
    if manifest["target"] != "tensorrt":
        raise BundleError(f"{root} is a {manifest['target']} bundle, not a tensorrt one")
    facts = device_facts(device)
    with cuda_context(device):
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        for name, graph in manifest["graphs"].items():
            path = root / graph["file"]
            if not path.is_file():
                raise BundleError(f"bundle {root}: {name} engine {graph['file']!r} is missing; "
                                  "run trtexec.sh")
            path = bundle_file(root, graph["file"], name)  # confined to the bundle folder
            if runtime.deserialize_cuda_engine(path.read_bytes()) is None:
                raise BundleError(f"{path} does not deserialize with TensorRT {facts['version']} here; "
                                  "rebuild it with trtexec.sh on this machine")
            graph["sha256"] = sha256_tree(path)
    manifest["tensorrt"] = dict(manifest.get("tensorrt") or {}) | facts | {"rebuilt": True}
    write_manifest(root, manifest)
    return facts
