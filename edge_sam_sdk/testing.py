"""Deterministic synthetic weights and golden-file checks (numpy only).

Implements ``shared/SYNTHETIC_WEIGHTS.md`` (spec version 1): every floating-point entry
of a state dict is generated from its key, its shape and a seed, so that an official
model and ours, given equal key names and shapes, hold identical weights.

Also reads the golden parity files (``shared/GOLDEN.md``) and compares our outputs
with them under the documented tolerances. Torch is never imported at module level:
:func:`synthetic_state_dict` converts to torch tensors only when given torch tensors.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPEC_VERSION = 1

#: Tags of the synthetic inputs (SYNTHETIC_WEIGHTS.md, "Synthetic inputs").
TAG_ENCODER_INPUT = 0xE1
TAG_EMBEDDINGS = 0xE2
TAG_MASK_INPUT = 0xE3
TAG_HIGH_RES_0 = 0xE4
TAG_HIGH_RES_1 = 0xE5


def synthetic_tensor(key: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The synthetic float32 value of state-dict entry ``key`` with ``shape``."""
    n = int(np.prod(shape)) if len(shape) else 1
    ss = np.random.SeedSequence([int(seed), zlib.crc32(key.encode("utf-8"))])
    rng = np.random.Generator(np.random.PCG64(ss))
    u = rng.random(n, dtype=np.float64) * 2.0 - 1.0
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        v = 1.0 + 0.5 * u
    elif leaf == "running_mean":
        v = 0.1 * u
    elif leaf == "bias":
        v = 0.05 * u
    elif leaf == "weight" and len(shape) == 1:
        v = 1.0 + 0.1 * u
    elif leaf == "weight" and len(shape) >= 2:
        v = math.sqrt(3.0 / float(np.prod(shape[1:]))) * u
    else:
        v = 0.1 * u
    return v.reshape(shape).astype(np.float32)


def _is_floating(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return False
    is_fp = getattr(value, "is_floating_point", None)
    if callable(is_fp):  # torch.Tensor
        return bool(is_fp())
    return bool(np.issubdtype(np.dtype(dtype), np.floating))


def synthetic_state_dict(state_dict: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Replace every floating entry of ``state_dict`` by its synthetic value.

    Entries may be numpy arrays or torch tensors; the result keeps each entry's kind
    (torch tensors come back as float32 torch tensors). Non-floating entries (e.g.
    ``num_batches_tracked``) are returned unchanged.
    """
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if not _is_floating(value):
            out[key] = value
            continue
        arr = synthetic_tensor(key, tuple(int(s) for s in value.shape), seed)
        if hasattr(value, "is_floating_point"):
            import torch

            out[key] = torch.from_numpy(arr)
        else:
            out[key] = arr
    return out


def weight_probe(state_dict: Mapping[str, Any], seed: int) -> dict[str, float]:
    """Float64 sums of the first three floating keys in sorted order (the check values)."""
    keys = sorted(k for k, v in state_dict.items() if _is_floating(v))[:3]
    return {
        k: float(synthetic_tensor(k, tuple(int(s) for s in state_dict[k].shape), seed)
                 .astype(np.float64).sum())
        for k in keys
    }


def synthetic_array(tag: int, shape: tuple[int, ...], seed: int, lo: float, hi: float) -> np.ndarray:
    """A synthetic float32 input of ``shape`` uniform in ``[lo, hi)`` (tag-seeded)."""
    n = int(np.prod(shape))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(tag)])))
    return (lo + (hi - lo) * rng.random(n, dtype=np.float64)).reshape(shape).astype(np.float32)


# --------------------------------------------------------------------------- golden files


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing one tensor with its golden samples."""

    name: str
    max_abs: float
    scale: float
    rel_l2: float
    sum_rel: float

    @property
    def ok(self) -> bool:
        return self.max_abs <= 1e-3 * self.scale and self.rel_l2 <= 1e-4

    def __str__(self) -> str:
        return (f"{self.name}: max_abs={self.max_abs:.3g} (bound {1e-3 * self.scale:.3g}), "
                f"rel_l2={self.rel_l2:.3g}, sum_rel={self.sum_rel:.3g}")


class Golden:
    """One golden ``<variant>.npz`` file (format in ``shared/GOLDEN.md``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._z = np.load(self.path, allow_pickle=False)
        self.meta: dict[str, Any] = json.loads(str(self._z["meta"]))

    def __contains__(self, name: str) -> bool:
        return name in self._z.files

    def __getitem__(self, name: str) -> np.ndarray:
        return self._z[name]

    @property
    def variant(self) -> str:
        return str(self.meta["variant"])

    @property
    def seed(self) -> int:
        return int(self.meta["seed"])

    def cases(self, prefix: str) -> list[str]:
        """Case names under ``prefix`` (e.g. ``"decoder"`` -> ``["one_point", ...]``)."""
        return [k.split(".", 1)[1] for k in self.meta["cases"] if k.startswith(prefix + ".")]

    def case(self, name: str) -> dict[str, Any]:
        return dict(self.meta["cases"][name])

    def state_keys(self) -> list[tuple[str, tuple[int, ...], str]]:
        """``(key, shape, dtype)`` of every entry of the official state dict, in order."""
        out = []
        for row in self._z["state_keys"]:
            key, shape, dtype = str(row).split("|")
            dims = tuple(int(s) for s in shape.split(",")) if shape else ()
            out.append((key, dims, dtype))
        return out

    def has_tensor(self, name: str) -> bool:
        files = self._z.files
        return f"{name}.idx" in files or (name in files and f"{name}.shape" not in files)

    def compare(self, name: str, actual: np.ndarray) -> Comparison:
        """Compare ``actual`` with the golden samples of tensor ``name``.

        Raises ``AssertionError`` if the shape differs. The bound (GOLDEN.md) is
        ``max_abs <= 1e-3 * max(1, max |golden|)`` and relative L2 <= 1e-4 over the samples.
        """
        actual = np.asarray(actual)
        z = self._z
        if f"{name}.shape" not in z.files and name in z.files:  # small outputs are stored whole
            whole = np.asarray(z[name], dtype=np.float64)
            shape, ref = tuple(whole.shape), whole.reshape(-1)
            idx = np.arange(ref.size)
            gsum, abs_sum = float(ref.sum()), float(np.abs(ref).sum())
        else:
            shape = tuple(int(s) for s in z[f"{name}.shape"])
            idx = z[f"{name}.idx"].astype(np.int64)
            ref = z[f"{name}.val"].astype(np.float64)
            gsum, abs_sum = float(z[f"{name}.sum"]), float(z[f"{name}.abs_sum"])
        if tuple(actual.shape) != shape:
            raise AssertionError(f"{name}: shape {tuple(actual.shape)} != golden {shape}")
        got = actual.reshape(-1)[idx].astype(np.float64)
        diff = np.abs(got - ref)
        scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
        rel_l2 = float(np.linalg.norm(got - ref)) / max(float(np.linalg.norm(ref)), 1e-12)
        asum = float(actual.astype(np.float64).sum())
        sum_rel = abs(asum - gsum) / max(abs_sum, 1e-12)
        return Comparison(name, float(diff.max()) if diff.size else 0.0, scale, rel_l2, sum_rel)

    def mask_iou(self, name: str, masks: np.ndarray) -> list[float]:
        """Per-mask IoU of boolean ``masks`` (CxHxW) with golden masks ``name`` on the sub4 grid."""
        shape = tuple(int(s) for s in self._z[f"{name}.shape"])
        masks = np.asarray(masks)
        if tuple(masks.shape) != shape:
            raise AssertionError(f"{name}: shape {tuple(masks.shape)} != golden {shape}")
        sub_shape = tuple(int(s) for s in self._z[f"{name}.sub4.shape"])
        n = int(np.prod(sub_shape))
        ref = np.unpackbits(self._z[f"{name}.sub4"])[:n].reshape(sub_shape).astype(bool)
        got = masks[:, ::4, ::4].astype(bool)
        ious = []
        for r, g in zip(ref, got, strict=True):
            union = np.logical_or(r, g).sum()
            ious.append(1.0 if union == 0 else float(np.logical_and(r, g).sum() / union))
        return ious
