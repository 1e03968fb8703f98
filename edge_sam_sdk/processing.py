"""Pre- and post-processing in numpy: the one implementation every backend and app mirrors.

Conventions (as segment-anything):
  * images are ``HxWx3`` uint8 RGB;
  * the encoder input is ``1x3xSxS`` float32: resized (longest side to ``S``),
    normalized with ``pixel_mean``/``pixel_std``, zero-padded at the bottom/right;
  * prompts are ``(x, y)`` pixel coordinates; the decoder takes them in the *prompt frame*
    (the resized image's frame, longest side ``prompt_frame``);
  * the decoder returns ``256x256`` low-resolution logits which are upscaled to
    ``SxS``, cropped to the resized image, and resized to the original size.

The resize reproduces Pillow's ``Image.resize(..., BILINEAR)`` bit for bit (same
fixed-point coefficients and two passes), which is what the official predictors use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import InputError

_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images


@dataclass(frozen=True)
class ProcessingSpec:
    """Declarative pre/post-processing of one variant; stored whole in the bundle manifest.

    Attributes:
        input_size: side ``S`` of the square encoder input.
        resize: how the longest side is scaled to ``S`` (aspect kept, zero pad bottom/right):
            ``"longest_side"`` -- SAM: sizes rounded (``int(x + 0.5)``), prompts scaled per
            axis by ``new/old``; ``"longest_side_floor"`` -- NanoSAM: the short side
            truncated (``int(S / aspect)``), prompts scaled by the exact ``S / max(H, W)``.
        interpolation: ``"pil_bilinear"`` or ``"pil_bicubic"`` (Pillow-exact).
        pixel_mean, pixel_std: per-channel RGB normalization in uint8 units.
        prompt_frame: longest side of the frame prompts are given to the decoder in (may
            exceed ``S``: EfficientViT-SAM L encodes 512 px but keeps SAM's 1024 frame).
        low_res_size: side of the decoder's low-resolution logits.
        mask_threshold: logits above this are foreground.
        pad_point: append a ``(0, 0)`` point labelled -1 when a prompt has no box (SAM's
            prompt encoder does; NanoSAM's engine does not).
        postprocess: ``"sam"`` -- bilinear upscale to the prompt frame, crop the resized
            image, bilinear to the original size; ``"crop_low_res"`` -- NanoSAM: crop the
            low-res logits to the image's share of them, one bilinear resize to the original.
    """

    input_size: int = 1024
    resize: str = "longest_side"
    interpolation: str = "pil_bilinear"
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    prompt_frame: int = 1024
    low_res_size: int = 256
    mask_threshold: float = 0.0
    pad_point: bool = True
    postprocess: str = "sam"

    def __post_init__(self) -> None:
        for name, value, known in (("resize", self.resize, _RESIZE_RULES),
                                   ("interpolation", self.interpolation, _FILTERS),
                                   ("postprocess", self.postprocess, _POSTPROCESS)):
            if value not in known:
                raise InputError(f"unknown {name} {value!r}; known: {sorted(known)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProcessingSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("pixel_mean", "pixel_std"):
            if key in known:
                known[key] = tuple(float(x) for x in known[key])
        return cls(**known)


# ----------------------------------------------------------------------------- resize


def _bilinear_filter(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _bicubic_filter(x: np.ndarray) -> np.ndarray:
    a = -0.5
    x = np.abs(x)
    inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    outer = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


_FILTERS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "pil_bilinear": (_bilinear_filter, 1.0),
    "pil_bicubic": (_bicubic_filter, 2.0),
}


def _pil_coefficients(in_size: int, out_size: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's per-output-pixel start index and fixed-point weights (``out x taps``)."""
    filt, base_support = _FILTERS[interpolation]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(centers - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(centers + support + 0.5).astype(np.int64), in_size) - xmin
    offsets = np.arange(taps, dtype=np.int64)[None, :]
    w = filt((offsets + xmin[:, None] - centers[:, None] + 0.5) / filterscale)
    w = np.where(offsets < xmax[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    fixed = np.trunc(w * (1 << _PRECISION_BITS) + np.where(w < 0, -0.5, 0.5)).astype(np.int64)
    return xmin, fixed


def _resample_axis(img: np.ndarray, out_size: int, axis: int, interpolation: str) -> np.ndarray:
    in_size = img.shape[axis]
    xmin, k = _pil_coefficients(in_size, out_size, interpolation)
    src = np.moveaxis(img, axis, 0).astype(np.int64)
    acc = np.full((out_size,) + src.shape[1:], 1 << (_PRECISION_BITS - 1), dtype=np.int64)
    extra = (1,) * (src.ndim - 1)
    for t in range(k.shape[1]):
        idx = np.minimum(xmin + t, in_size - 1)
        acc += src[idx] * k[:, t].reshape((out_size,) + extra)
    out = np.clip(acc >> _PRECISION_BITS, 0, 255).astype(np.uint8)
    return np.moveaxis(out, 0, axis)


def resize_uint8(image: np.ndarray, size: tuple[int, int], interpolation: str = "pil_bilinear") -> np.ndarray:
    """Resize ``HxWxC`` uint8 to ``size=(h, w)`` exactly as Pillow's ``Image.resize``."""
    if interpolation not in _FILTERS:
        raise InputError(f"unknown interpolation {interpolation!r}; known: {sorted(_FILTERS)}")
    out_h, out_w = size
    in_h, in_w = image.shape[:2]
    # Pillow (>= 10.x ImagingResampleInner) runs the vertical pass first only when the
    # height shrinks by more than twice as many pixels as the width does.
    vertical_first = (in_h - out_h) > 0 and (in_h - out_h) > (in_w - out_w) * 2
    out = image
    for axis in ((0, 1) if vertical_first else (1, 0)):
        if out.shape[axis] != size[axis]:
            out = _resample_axis(out, size[axis], axis, interpolation)
    return np.ascontiguousarray(out)


# ------------------------------------------------------------------------ preprocessing


_RESIZE_RULES = ("longest_side", "longest_side_floor")
_POSTPROCESS = ("sam", "crop_low_res")


def resized_shape(original_size: tuple[int, int], long_side: int,
                  rule: str = "longest_side") -> tuple[int, int]:
    """``(h, w)`` after scaling the longest side of ``original_size`` to ``long_side``.

    ``rule`` is a :attr:`ProcessingSpec.resize` value: SAM rounds both sides, NanoSAM
    truncates the short side computed from the aspect ratio.
    """
    h, w = original_size
    if rule == "longest_side_floor":
        aspect = w / h
        return (int(long_side / aspect), long_side) if aspect >= 1 else (long_side, int(long_side * aspect))
    scale = long_side * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def check_image(image: Any) -> np.ndarray:
    """Validate an ``HxWx3`` uint8 RGB image (clear errors otherwise)."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array (HxWx3 uint8 RGB), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must have shape HxWx3 (RGB), got {image.shape}")
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise InputError(f"image is empty: shape {image.shape}")
    return image


def preprocess(image: np.ndarray, spec: ProcessingSpec) -> tuple[np.ndarray, tuple[int, int]]:
    """Image ``HxWx3`` uint8 RGB -> (encoder input ``1x3xSxS`` float32, resized ``(h, w)``)."""
    check_image(image)
    new_h, new_w = resized_shape(image.shape[:2], spec.input_size, spec.resize)
    resized = resize_uint8(image, (new_h, new_w), spec.interpolation)
    mean = np.asarray(spec.pixel_mean, dtype=np.float32)
    std = np.asarray(spec.pixel_std, dtype=np.float32)
    normalized = (resized.astype(np.float32) - mean) / std
    s = spec.input_size
    out = np.zeros((1, 3, s, s), dtype=np.float32)
    out[0, :, :new_h, :new_w] = normalized.transpose(2, 0, 1)
    return out, (new_h, new_w)


def transform_coords(coords: np.ndarray, original_size: tuple[int, int], spec: ProcessingSpec) -> np.ndarray:
    """Pixel ``(..., 2)`` ``(x, y)`` coordinates -> the decoder's prompt frame (float32)."""
    old_h, old_w = original_size
    out = np.array(coords, dtype=np.float64, copy=True)
    if spec.resize == "longest_side_floor":
        out *= spec.prompt_frame / max(old_h, old_w)
        return out.astype(np.float32)
    new_h, new_w = resized_shape(original_size, spec.prompt_frame, spec.resize)
    out[..., 0] *= new_w / old_w
    out[..., 1] *= new_h / old_h
    return out.astype(np.float32)


def transform_boxes(boxes: np.ndarray, original_size: tuple[int, int], spec: ProcessingSpec) -> np.ndarray:
    """Pixel boxes ``(..., 4)`` XYXY -> prompt frame, as ``(..., 2, 2)`` corners."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return transform_coords(boxes.reshape(boxes.shape[:-1] + (2, 2)), original_size, spec)


# ----------------------------------------------------------------------- postprocessing


def _bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``out x in`` matrix of ``F.interpolate(mode="bilinear", align_corners=False)``."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i0 = np.minimum(i0, in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    m = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def postprocess_masks(low_res: np.ndarray, original_size: tuple[int, int],
                      spec: ProcessingSpec) -> np.ndarray:
    """Low-res logits ``(..., L, L)`` -> logits ``(..., H, W)`` at the original size.

    ``"sam"``: segment-anything's ``postprocess_masks`` -- bilinear upscale to the prompt
    frame ``F x F``, crop to the resized image in that frame, bilinear resize to
    ``original_size``. ``"crop_low_res"``: crop the ``L x L`` logits to the image's share
    (long side ``L``, short side truncated) and resize once. Each rule's linear steps are
    composed into one matrix per axis.
    """
    low_res = np.asarray(low_res, dtype=np.float32)
    size = low_res.shape[-1]
    oh, ow = original_size
    if spec.postprocess == "crop_low_res":
        lim_h, lim_w = (size, int(size * ow / oh)) if oh >= ow else (int(size * oh / ow), size)
        ry, rx = np.zeros((oh, size)), np.zeros((ow, size))
        ry[:, :lim_h] = _bilinear_matrix(lim_h, oh)
        rx[:, :lim_w] = _bilinear_matrix(lim_w, ow)
    else:
        frame = spec.prompt_frame
        h, w = resized_shape(original_size, frame, spec.resize)
        up = _bilinear_matrix(size, frame)
        ry = _bilinear_matrix(h, oh) @ up[:h]
        rx = _bilinear_matrix(w, ow) @ up[:w]
    return np.matmul(np.matmul(ry.astype(np.float32), low_res), rx.astype(np.float32).T)


def stability_score(logits: np.ndarray, threshold: float = 0.0, offset: float = 1.0) -> np.ndarray:
    """Per-mask ``#(logits > threshold + offset) / #(logits > threshold - offset)`` over the
    last two axes (segment-anything's stability score; EdgeSAM ranks masks with it)."""
    logits = np.asarray(logits)
    hi = (logits > threshold + offset).sum(axis=(-2, -1), dtype=np.int64)
    lo = (logits > threshold - offset).sum(axis=(-2, -1), dtype=np.int64)
    return (hi / np.maximum(lo, 1)).astype(np.float32)


def threshold_masks(logits: np.ndarray, spec: ProcessingSpec) -> np.ndarray:
    """Boolean masks: ``logits > mask_threshold``."""
    return np.asarray(logits) > spec.mask_threshold


# ------------------------------------------------------------------------------ prompts


def decoder_prompts(
    coords: np.ndarray | None,
    labels: np.ndarray | None,
    boxes: np.ndarray | None,
    batch: int = 1,
    pad_point: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Points and boxes (already in the prompt frame) -> the decoder's ``point_coords``
    ``BxNx2`` and ``point_labels`` ``BxN`` float32.

    ``coords`` is ``BxNx2`` with ``labels`` ``BxN``; ``boxes`` is ``Bx2x2`` corners. Box
    corners follow the points with labels 2 and 3. Without a box, one padding point
    ``(0, 0)`` with label -1 is appended if ``pad_point`` (as SAM's prompt encoder does). With neither
    points nor box the result has ``N = 0``.
    """
    parts_c: list[np.ndarray] = []
    parts_l: list[np.ndarray] = []
    if coords is not None:
        batch = coords.shape[0]
        parts_c.append(np.asarray(coords, dtype=np.float32))
        parts_l.append(np.asarray(labels, dtype=np.float32))
    if boxes is not None:
        batch = boxes.shape[0]
        parts_c.append(np.asarray(boxes, dtype=np.float32).reshape(batch, 2, 2))
        parts_l.append(np.tile(np.array([[2.0, 3.0]], dtype=np.float32), (batch, 1)))
    elif coords is not None and pad_point:
        parts_c.append(np.zeros((batch, 1, 2), dtype=np.float32))
        parts_l.append(np.full((batch, 1), -1.0, dtype=np.float32))
    if not parts_c:
        return np.zeros((batch, 0, 2), np.float32), np.zeros((batch, 0), np.float32)
    return np.concatenate(parts_c, axis=1), np.concatenate(parts_l, axis=1)
