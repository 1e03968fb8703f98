"""Resampling kernels in numpy, each equal to the library an official predictor uses.

Every rule is expressed as *taps*: for each output pixel along one axis, the input indices
it reads (``out x taps``, already clamped to the image) and their weights. The rules:

* ``pil_bilinear``, ``pil_bicubic`` -- Pillow's ``Image.resize`` on uint8 images, bit for
  bit (antialiased when shrinking, fixed-point weights, two passes): SAM's predictors.
* ``torch_bilinear`` -- ``F.interpolate(mode="bilinear", align_corners=False)`` without
  antialiasing, on float images (EfficientSAM's preprocessing, SAM's mask upscaling).
* ``torch_bilinear_aa`` -- the same with ``antialias=True`` (torchvision ``Resize`` on
  tensors: SAM 2's preprocessing).
* ``torch_bicubic`` -- ``F.interpolate(mode="bicubic", align_corners=False)`` (A = -0.75,
  edge pixels repeated): EfficientSAM's mask upscaling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import InputError

_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images

Taps = tuple[np.ndarray, np.ndarray]  # (indices out x taps int64, weights out x taps float64)


def _triangle(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _keys_cubic(a: float) -> Callable[[np.ndarray], np.ndarray]:
    def f(x: np.ndarray) -> np.ndarray:
        x = np.abs(x)
        inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        outer = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))
    return f


def _support_taps(in_size: int, out_size: int, filt: Callable[[np.ndarray], np.ndarray],
                  base_support: float, antialias: bool = True) -> Taps:
    """Pillow's (and torch's antialias) scheme: a filter stretched by the scale when shrinking,
    centred at ``(i + 0.5) * scale``, weights renormalised over the taps inside the image."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0) if antialias else 1.0
    support = base_support * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(centers - support + 0.5).astype(np.int64), 0)
    xsize = np.minimum(np.trunc(centers + support + 0.5).astype(np.int64), in_size) - xmin
    offsets = np.arange(taps, dtype=np.int64)[None, :]
    w = filt((offsets + xmin[:, None] - centers[:, None] + 0.5) / filterscale)
    w = np.where(offsets < xsize[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    return np.minimum(xmin[:, None] + offsets, in_size - 1), w


def _torch_taps(in_size: int, out_size: int, cubic: bool) -> Taps:
    """``F.interpolate(align_corners=False)`` without antialiasing (bilinear or bicubic)."""
    scale = in_size / out_size
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    if not cubic:
        src = np.maximum(src, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
        frac = src - i0
        idx = np.stack([i0, np.minimum(i0 + 1, in_size - 1)], axis=1)
        return idx, np.stack([1.0 - frac, frac], axis=1)
    i0 = np.floor(src).astype(np.int64)
    t = (src - i0)[:, None]
    offsets = np.arange(-1, 3, dtype=np.int64)[None, :]
    w = _keys_cubic(-0.75)(t - offsets)
    return np.clip(i0[:, None] + offsets, 0, in_size - 1), w


RULES = ("pil_bilinear", "pil_bicubic", "torch_bilinear", "torch_bilinear_aa", "torch_bicubic")


def taps(in_size: int, out_size: int, rule: str) -> Taps:
    """Indices and weights (``out_size x taps``) of ``rule`` along one axis."""
    if rule == "pil_bilinear" or rule == "torch_bilinear_aa":
        return _support_taps(in_size, out_size, _triangle, 1.0)
    if rule == "pil_bicubic":
        return _support_taps(in_size, out_size, _keys_cubic(-0.5), 2.0)
    if rule in ("torch_bilinear", "torch_bicubic"):
        return _torch_taps(in_size, out_size, cubic=rule == "torch_bicubic")
    raise InputError(f"unknown resampling rule {rule!r}; known: {list(RULES)}")


def matrix(in_size: int, out_size: int, rule: str) -> np.ndarray:
    """The ``out_size x in_size`` float64 matrix of ``rule`` along one axis."""
    idx, w = taps(in_size, out_size, rule)
    m = np.zeros((out_size, in_size), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_size), idx.shape[1]), idx.reshape(-1)), w.reshape(-1))
    return m


Block = tuple[int, int, int, int, np.ndarray]  # out start, out stop, in start, in stop, weights


def banded(m: np.ndarray, chunk: int = 64) -> list[Block]:
    """A resampling matrix ``out x in`` cut into row chunks of ``chunk`` outputs, each with
    only the input columns it reads: ``[(o0, o1, i0, i1, m[o0:o1, i0:i1] as float32)]``.

    Resampling matrices are banded (a few taps per output), so :func:`apply_banded` with
    these blocks does ``~out * (chunk * in / out + taps)`` multiply-adds instead of
    ``out * in``, with the same non-zero terms.
    """
    blocks: list[Block] = []
    for o0 in range(0, m.shape[0], chunk):
        rows = m[o0:o0 + chunk]
        used = np.flatnonzero(np.any(rows != 0, axis=0))
        i0, i1 = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        blocks.append((o0, o0 + rows.shape[0], i0, i1, np.ascontiguousarray(rows[:, i0:i1], np.float32)))
    return blocks


def apply_banded(x: np.ndarray, blocks: list[Block], axis: int) -> np.ndarray:
    """``m @ x`` along ``axis`` (-2: rows, -1: columns) of float32 ``x (..., H, W)``, with
    ``m`` given as :func:`banded` blocks.

    The products run on one BLAS thread: these are small, and idle BLAS workers spin for a
    while after a call, stealing the cores from the runtime's next graph run.
    """
    out_size = blocks[-1][1]
    shape = list(x.shape)
    shape[axis] = out_size
    out = np.empty(shape, np.float32)
    with _one_blas_thread():
        for o0, o1, i0, i1, w in blocks:
            if axis == -2:
                np.matmul(w, x[..., i0:i1, :], out=out[..., o0:o1, :])
            else:
                np.matmul(x[..., i0:i1], w.T, out=out[..., o0:o1])
    return out


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a dependency; without it numpy keeps its thread count
        return None
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[Any]:
    controller = _blas_controller()
    return controller.limit(limits=1, user_api="blas") if controller is not None else nullcontext()


#: Bytes of the int64/float64 working copy one resampling band may take: a pass runs over
#: bands of whole lines across the other axis, so memory stays bounded for any image size.
BAND_BYTES = 64 << 20


def _bands(img: np.ndarray, axis: int) -> list[tuple[slice, ...]]:
    """Index tuples cutting ``img`` (``HxWxC``) into bands across axis ``1 - axis``, each with
    at most :data:`BAND_BYTES` of 8-byte values."""
    other = 1 - axis
    line = max(1, int(np.prod(img.shape)) // max(img.shape[other], 1)) * 8
    step = max(1, BAND_BYTES // line)
    out: list[tuple[slice, ...]] = []
    for b0 in range(0, img.shape[other], step):
        index = [slice(None)] * img.ndim
        index[other] = slice(b0, min(b0 + step, img.shape[other]))
        out.append(tuple(index))
    return out


def _banded_pass(img: np.ndarray, out_size: int, axis: int, kernel: Callable[[np.ndarray], np.ndarray],
                 dtype: type) -> np.ndarray:
    """``kernel`` (one axis-``axis`` resampling of a band) over every band of ``img``."""
    shape = list(img.shape)
    shape[axis] = out_size
    out: np.ndarray = np.empty(shape, dtype)
    for index in _bands(img, axis):
        out[index] = kernel(img[index])
    return out


def _pil_axis(img: np.ndarray, out_size: int, axis: int, rule: str) -> np.ndarray:
    """One Pillow pass (fixed point, uint8 out) along ``axis``, band by band."""
    idx, w = taps(img.shape[axis], out_size, rule)
    fixed = np.trunc(w * (1 << _PRECISION_BITS) + np.where(w < 0, -0.5, 0.5)).astype(np.int64)

    def kernel(band: np.ndarray) -> np.ndarray:
        src = np.moveaxis(band, axis, 0).astype(np.int64)
        acc = np.full((out_size,) + src.shape[1:], 1 << (_PRECISION_BITS - 1), dtype=np.int64)
        extra = (1,) * (src.ndim - 1)
        for t in range(idx.shape[1]):
            acc += src[idx[:, t]] * fixed[:, t].reshape((out_size,) + extra)
        return np.moveaxis(np.clip(acc >> _PRECISION_BITS, 0, 255).astype(np.uint8), 0, axis)

    return _banded_pass(img, out_size, axis, kernel, np.uint8)


def _float_axis(img: np.ndarray, out_size: int, axis: int, rule: str) -> np.ndarray:
    """One float64 pass along ``axis`` (``img`` uint8 or float64), band by band."""
    idx, w = taps(img.shape[axis], out_size, rule)

    def kernel(band: np.ndarray) -> np.ndarray:
        src = np.moveaxis(band, axis, 0).astype(np.float64)
        acc = np.zeros((out_size,) + src.shape[1:], dtype=np.float64)
        extra = (1,) * (src.ndim - 1)
        for t in range(idx.shape[1]):
            acc += src[idx[:, t]] * w[:, t].reshape((out_size,) + extra)
        return np.moveaxis(acc, 0, axis)

    return _banded_pass(img, out_size, axis, kernel, np.float64)


def resize_image(image: np.ndarray, size: tuple[int, int], rule: str = "pil_bilinear") -> np.ndarray:
    """Resize ``HxWxC`` uint8 to ``size=(h, w)`` with ``rule``.

    ``pil_*`` rules return uint8 exactly as Pillow's ``Image.resize``; ``torch_*`` rules
    return float64 pixel values (0..255 scale), as torch computes on the float image. Each
    pass runs over bands of lines (:data:`BAND_BYTES`), so the working memory beyond the
    input and output stays bounded (no full-size int64/float64 copy of the image).
    """
    if rule not in RULES:
        raise InputError(f"unknown interpolation {rule!r}; known: {list(RULES)}")
    out_h, out_w = size
    in_h, in_w = image.shape[:2]
    if rule.startswith("pil_"):
        # Pillow (>= 10.x ImagingResampleInner) runs the vertical pass first only when the
        # height shrinks by more than twice as many pixels as the width does.
        vertical_first = (in_h - out_h) > 0 and (in_h - out_h) > (in_w - out_w) * 2
        out = image
        for axis in ((0, 1) if vertical_first else (1, 0)):
            if out.shape[axis] != size[axis]:
                out = _pil_axis(out, size[axis], axis, rule)
        return np.ascontiguousarray(out)
    result = image
    for axis in (0, 1):
        if result.shape[axis] != size[axis]:
            result = _float_axis(result, size[axis], axis, rule)
    return result.astype(np.float64, copy=result is image)
