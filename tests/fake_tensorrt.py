"""A stand-in for ``tensorrt`` and ``pycuda.driver`` that runs our code paths without a GPU.

It mirrors the parts of the TensorRT >= 8.5 Python API and of pycuda that
``exporters.targets.tensorrt.engine`` and ``runtimes.tensorrt_backend`` call (names and signatures
as documented), and executes an "engine" by running its ONNX graph with onnxruntime on
host memory that plays the device. It proves our build flow, buffer handling, manifest
and error paths; it proves nothing about TensorRT itself (parsing, kernels, fp16).
"""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import numpy as np
from fake_pycuda import ContextStack, copy_to_device, copy_to_host, device_block, driver_module

MAGIC = b"FAKETRT\n"


# ------------------------------------------------------------------------------ tensorrt


class DataType:
    def __init__(self, name: str, np_type: Any):
        self.name, self.np_type = name, np_type


float32, float16, int32, int64, bool_ = (DataType("FLOAT", np.float32), DataType("HALF", np.float16),
                                         DataType("INT32", np.int32), DataType("INT64", np.int64),
                                         DataType("BOOL", np.bool_))
_ONNX_TYPES = {1: float32, 10: float16, 6: int32, 7: int64, 9: bool_}


class TensorIOMode:
    INPUT, OUTPUT = "INPUT", "OUTPUT"


class Logger:
    WARNING = 2

    def __init__(self, level: int = 2):
        self.level = level


class _Flags:
    def __init__(self, *names: str):
        for i, n in enumerate(names):
            setattr(self, n, i)


class _Tensor:
    def __init__(self, dtype: DataType):
        self.dtype = dtype


class _Layer:
    def __init__(self, name: str, outputs: int):
        self.name = name
        self.precision = float32
        self.outputs = [_Tensor(float32) for _ in range(outputs)]
        self.output_types: dict[int, DataType] = {}

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_output(self, j: int) -> _Tensor:
        return self.outputs[j]

    def set_output_type(self, j: int, dtype: DataType) -> None:
        self.output_types[j] = dtype


class _Network:
    def __init__(self) -> None:
        self.layers: list[_Layer] = []
        self.onnx: bytes = b""

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> _Layer:
        return self.layers[i]


class OnnxParser:
    def __init__(self, network: _Network, logger: Logger):
        self.network, self.errors = network, []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> str:
        return self.errors[i]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        model = onnx.load(path)
        unknown = [n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")]
        if unknown:
            self.errors = [f"UNSUPPORTED_NODE: {op}" for op in unknown]
            return False
        self.network.layers = [_Layer(n.name, len(n.output)) for n in model.graph.node]
        self.network.onnx = model.SerializeToString()
        return True


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self.shapes[name] = [list(lo), list(opt), list(hi)]


class _Config:
    def __init__(self) -> None:
        self.flags: set[int] = set()
        self.profiles: list[_Profile] = []
        self.int8_calibrator: Any = None
        self.calibration_profile: _Profile | None = None
        self.workspace = 0

    def set_memory_pool_limit(self, pool: int, size: int) -> None:
        self.workspace = size

    def set_flag(self, flag: int) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: int) -> None:
        self.flags.discard(flag)

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: _Profile) -> bool:
        self.calibration_profile = profile
        return True


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


class Builder:
    built: list[dict[str, Any]] = []  # what each build was asked for, for the tests

    def __init__(self, logger: Logger):
        self.platform_has_fast_fp16 = True

    def create_network(self, flags: int = 0) -> _Network:
        return _Network()

    def create_builder_config(self) -> _Config:
        config = _Config()
        config.flags.add(BuilderFlag.TF32)  # on by default, as in TensorRT
        return config

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config) -> bytes | None:
        assert ContextStack.stack, "build without a current CUDA context"
        calibrated = 0
        if BuilderFlag.INT8 in config.flags:
            cal = config.int8_calibrator
            assert cal.get_batch_size() == 1
            if cal.read_calibration_cache() is None:
                while (ptrs := cal.get_batch(["image"])) is not None:
                    assert len(device_block(ptrs[0])) > 0
                    calibrated += 1
                cal.write_calibration_cache(memoryview(b"TRT-FAKE-EntropyCalibration2\n"))
        pinned = [lay.name for lay in network.layers if lay.precision is float32 and lay.output_types]
        facts = {"version": __version__, "profile": config.profiles[0].shapes if config.profiles else {},
                 "flags": sorted(config.flags), "pinned": pinned, "calibrated_batches": calibrated}
        Builder.built.append(facts)
        header = json.dumps(facts).encode()
        return MAGIC + len(header).to_bytes(8, "little") + header + network.onnx


class _Engine:
    def __init__(self, facts: dict[str, Any], model: bytes):
        import onnx
        import onnxruntime as ort

        self.facts = facts
        graph = onnx.load_from_string(model).graph
        self.io = {}
        for v, mode in [(v, TensorIOMode.INPUT) for v in graph.input] + \
                       [(v, TensorIOMode.OUTPUT) for v in graph.output]:
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
            self.io[v.name] = (mode, _ONNX_TYPES[v.type.tensor_type.elem_type], dims)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return list(self.io)[i]

    def get_tensor_mode(self, name: str) -> str:
        return self.io[name][0]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self.io[name][1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.io[name][2])

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.facts["profile"][name]]

    def create_execution_context(self) -> _ExecutionContext:
        return _ExecutionContext(self)


class _ExecutionContext:
    def __init__(self, engine: _Engine):
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: Any) -> bool:
        lo, _, hi = self.engine.get_tensor_profile_shape(name, 0) if name in self.engine.facts["profile"] \
            else [self.engine.get_tensor_shape(name)] * 3
        if any(s < a or s > b for s, a, b in zip(shape, lo, hi, strict=True)):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def _feed(self, zeros: bool) -> dict[str, np.ndarray]:
        feed = {}
        for name, (mode, dtype, _) in self.engine.io.items():
            if mode == TensorIOMode.INPUT:
                arr = np.zeros(self.shapes[name], dtype.np_type)
                if not zeros:
                    copy_to_host(arr, self.addresses[name])
                feed[name] = arr
        return feed

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if self.engine.io[name][0] == TensorIOMode.INPUT:
            return self.shapes[name]
        outputs = [o.name for o in self.engine.session.get_outputs()]
        values = self.engine.session.run(None, self._feed(zeros=True))
        return tuple(values[outputs.index(name)].shape)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        assert ContextStack.stack, "execute without a current CUDA context"
        outputs = [o.name for o in self.engine.session.get_outputs()]
        for name, value in zip(outputs, self.engine.session.run(None, self._feed(zeros=False)), strict=True):
            copy_to_device(self.addresses[name], value)
        return True


class Runtime:
    def __init__(self, logger: Logger):
        pass

    def deserialize_cuda_engine(self, data: bytes) -> _Engine | None:
        if not data.startswith(MAGIC):
            return None
        n = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
        facts = json.loads(data[len(MAGIC) + 8:len(MAGIC) + 8 + n])
        if facts["version"] != __version__:
            return None  # as TensorRT: engines only load in the version that built them
        return _Engine(facts, data[len(MAGIC) + 8 + n:])


__version__ = "10.3.0"
BuilderFlag = _Flags("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "TF32")
NetworkDefinitionCreationFlag = _Flags("EXPLICIT_BATCH")
MemoryPoolType = _Flags("WORKSPACE")


def nptype(dtype: DataType) -> Any:
    return dtype.np_type


def install(monkeypatch: Any, version: str = "10.3.0") -> types.ModuleType:
    """Put the stand-ins into ``sys.modules`` (undone by ``monkeypatch``); returns ``tensorrt``."""
    trt = sys.modules[__name__]
    monkeypatch.setattr(trt, "__version__", version)
    monkeypatch.setattr(Builder, "built", [])
    pycuda = types.ModuleType("pycuda")
    driver = driver_module()
    pycuda.driver = driver  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    return trt


def restamp(engine: Any, version: str) -> None:
    """Rewrite an engine file as if rebuilt by TensorRT ``version`` (a trtexec.sh rebuild)."""
    from pathlib import Path

    data = Path(engine).read_bytes()
    n = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
    facts = json.loads(data[len(MAGIC) + 8:len(MAGIC) + 8 + n]) | {"version": version}
    header = json.dumps(facts).encode()
    Path(engine).write_bytes(MAGIC + len(header).to_bytes(8, "little") + header + data[len(MAGIC) + 8 + n:])
