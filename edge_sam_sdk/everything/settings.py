"""Checks of :class:`AutomaticMaskGenerator`'s settings: types, ranges and the work they imply.

Every bad value is an :class:`InputError` naming the setting; settings that would ask for an
absurd amount of work say how much (``points_per_side=3000`` -> 9,000,000 prompts per crop,
``crop_n_layers=14`` -> 357,913,941 crops) before anything runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError

MAX_PROMPTS_PER_CROP = 256 * 256  # points_per_side <= 256 (segment-anything uses 32 or 64)
MAX_CROP_LAYERS = 4  # 1 + 4 + 16 + 64 + 256 = 341 crops, each an encoder run
MAX_PROMPTS = 1 << 20  # decoder prompts over all crops
MAX_POINTS_PER_BATCH = 1024  # one decoder run's low-res output: 1024 x 3 x 256 x 256 float32 = 805 MB


def as_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in ``[lo, hi]``, or an InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or value != int(value):
            raise InputError(f"{name} must be a whole number, got {value!r}")
    out = int(value)
    if out < lo or (hi is not None and out > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise InputError(f"{name} must be {bound}, got {out}")
    return out


def as_float(name: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    """``value`` as a finite float in ``[lo, hi]``, or an InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise InputError(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name} must be finite, got {out}")
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        raise InputError(f"{name} must be in [{lo if lo is not None else '-inf'}, "
                         f"{hi if hi is not None else 'inf'}], got {out}")
    return out


def crop_count(n_layers: int) -> int:
    """Crops (encoder runs) of ``n_layers`` crop layers: ``sum(4**i for i in 0..n)``."""
    return (4 ** (n_layers + 1) - 1) // 3


def check_work(points_per_side: int | None, crop_n_layers: int, downscale: int,
               point_grids: list[np.ndarray] | None, sampling: str) -> None:
    """Refuse settings whose prompt or crop count is absurd, saying the count."""
    if crop_n_layers > MAX_CROP_LAYERS:
        raise InputError(f"crop_n_layers={crop_n_layers} means {crop_count(crop_n_layers):,} crops "
                         f"(one encoder run each); at most {MAX_CROP_LAYERS} layers "
                         f"({crop_count(MAX_CROP_LAYERS):,} crops)")
    if point_grids is not None:
        per_layer = [len(g) for g in point_grids]
    elif points_per_side is not None and sampling != "boxes":
        per_layer = [int(points_per_side / downscale ** i) ** 2 for i in range(crop_n_layers + 1)]
        if per_layer[0] > MAX_PROMPTS_PER_CROP:
            raise InputError(f"points_per_side={points_per_side} means {per_layer[0]:,} prompts per crop; "
                             f"at most {MAX_PROMPTS_PER_CROP:,} (points_per_side <= "
                             f"{math.isqrt(MAX_PROMPTS_PER_CROP)})")
    else:
        return
    for i, n in enumerate(per_layer):
        if n > MAX_PROMPTS_PER_CROP:
            raise InputError(f"crop layer {i} has {n:,} prompts per crop; at most {MAX_PROMPTS_PER_CROP:,}")
    total = sum(n * 4 ** i for i, n in enumerate(per_layer))
    if total > MAX_PROMPTS:
        raise InputError(f"these settings mean {total:,} decoder prompts over {crop_count(crop_n_layers):,} "
                         f"crops; at most {MAX_PROMPTS:,}")


def check_point_grids(point_grids: Any, crop_n_layers: int) -> list[np.ndarray]:
    """``point_grids`` as float64 ``Nx2`` arrays in ``[0, 1]``, one per crop layer."""
    grids = []
    for i, g in enumerate(point_grids):
        try:
            arr = np.asarray(g, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"point_grids[{i}] must be numeric, shape Nx2") from None
        if arr.size > 2 * MAX_PROMPTS_PER_CROP:
            raise InputError(f"point_grids[{i}] has {arr.size // 2:,} points; "
                             f"at most {MAX_PROMPTS_PER_CROP:,}")
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise InputError(f"point_grids[{i}] must have shape Nx2, got {arr.shape}")
        if not np.all(np.isfinite(arr)) or arr.min(initial=0.0) < 0.0 or arr.max(initial=0.0) > 1.0:
            raise InputError(f"point_grids[{i}] must hold finite values in [0, 1] (fractions of the crop)")
        grids.append(arr)
    if len(grids) != crop_n_layers + 1:
        raise InputError(f"point_grids needs one grid per crop layer ({crop_n_layers + 1}), got {len(grids)}")
    return grids
