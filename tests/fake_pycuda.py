"""A stand-in for ``pycuda.driver`` (host memory plays the device), used by :mod:`fake_tensorrt`.

Mirrors the documented calls ``runtimes.tensorrt_backend`` and the engine builder make:
``mem_alloc``, ``memcpy_htod(_async)``, ``memcpy_dtoh(_async)``, ``Stream``, ``Device``,
``Context``. It proves buffer handling, nothing about CUDA.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

# ------------------------------------------------------------------------- pycuda.driver


class DeviceMemory:
    blocks: dict[int, bytearray] = {}
    next_ptr = 0x1000


class DeviceAllocation:
    def __init__(self, nbytes: int):
        self.ptr = DeviceMemory.next_ptr
        DeviceMemory.next_ptr += max(nbytes, 1) + 256
        DeviceMemory.blocks[self.ptr] = bytearray(nbytes)

    def __int__(self) -> int:
        return self.ptr

    def free(self) -> None:
        del DeviceMemory.blocks[self.ptr]


def device_block(ptr: Any) -> bytearray:
    return DeviceMemory.blocks[int(ptr)]


def copy_to_device(dest: Any, src: np.ndarray) -> None:
    data = np.ascontiguousarray(src).tobytes()
    block = device_block(dest)
    assert len(data) <= len(block), f"device buffer of {len(block)} B gets {len(data)} B"
    block[:len(data)] = data


def copy_to_host(dest: np.ndarray, src: Any) -> None:
    block = device_block(src)
    assert dest.nbytes <= len(block), f"reading {dest.nbytes} B from a device buffer of {len(block)} B"
    dest[...] = np.frombuffer(bytes(block[:dest.nbytes]), dtype=dest.dtype).reshape(dest.shape)


class ContextStack:
    stack: list[ContextStack] = []

    def push(self) -> None:
        ContextStack.stack.append(self)


class Context:
    @staticmethod
    def pop() -> None:
        ContextStack.stack.pop()


class Device:
    name_ = "Fake GPU"
    cc = (8, 7)

    def __init__(self, index: int):
        self.index = index

    @staticmethod
    def count() -> int:
        return 1

    def name(self) -> str:
        return Device.name_

    def compute_capability(self) -> tuple[int, int]:
        return Device.cc

    def retain_primary_context(self) -> ContextStack:
        return ContextStack()


class Stream:
    handle = 7

    def synchronize(self) -> None:
        pass


def driver_module() -> types.ModuleType:
    m = types.ModuleType("pycuda.driver")
    m.init = lambda: None  # type: ignore[attr-defined]
    m.Device, m.Context, m.Stream = Device, Context, Stream  # type: ignore[attr-defined]
    m.mem_alloc = DeviceAllocation  # type: ignore[attr-defined]
    m.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)  # type: ignore[attr-defined]

    def in_context(fn: Any) -> Any:
        def call(*args: Any) -> Any:
            assert ContextStack.stack, "CUDA call without a current context"
            return fn(*args)
        return call

    m.memcpy_htod = in_context(lambda dest, src: copy_to_device(dest, src))  # type: ignore[attr-defined]
    m.memcpy_htod_async = in_context(lambda dest, src, stream=None: copy_to_device(dest, src))  # type: ignore
    m.memcpy_dtoh_async = in_context(lambda dest, src, stream=None: copy_to_host(dest, src))  # type: ignore
    return m
