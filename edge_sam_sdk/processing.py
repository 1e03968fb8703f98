"""Pre- and post-processing in numpy: the one implementation every backend and app mirrors.

Conventions (as segment-anything):
  * images are ``HxWx3`` uint8 RGB;
  * the encoder input is ``1x3xSxS`` float32: resized per :attr:`ProcessingSpec.resize`
    (longest side to ``S`` and zero-padded bottom/right, or stretched to ``SxS``),
    normalized with ``pixel_mean``/``pixel_std``;
  * prompts are ``(x, y)`` pixel coordinates; the decoder takes them in the *prompt frame*
    (the resized image's frame, longest side ``prompt_frame``);
  * the decoder returns ``256x256`` low-resolution logits which are resized back to the
    original image per :attr:`ProcessingSpec.postprocess`.

Every variation an official predictor makes is a field of :class:`ProcessingSpec`, stored
in the bundle manifest, so apps on any platform read the same description. Resampling
kernels (Pillow-exact and torch-exact) live in :mod:`edge_sam_sdk.resize`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import resize as R
from .errors import InputError

#: Largest image (pixels, ``H * W``) the SDK takes: about 11585 x 11585 (134 MP). Larger ones
#: are refused with ``InputError`` (downscale them first); ``edgesam`` refuses such files.
MAX_IMAGE_PIXELS = 1 << 27

_RESIZE_RULES = ("longest_side", "longest_side_floor", "stretch")
_POSTPROCESS = ("sam", "crop_low_res", "resize")
_PAD_POINT = ("no_box", "always", "never")
_MASK_RULES = ("torch_bilinear", "torch_bicubic")


@dataclass(frozen=True)
class ProcessingSpec:
    """Declarative pre/post-processing of one variant; stored whole in the bundle manifest.

    Attributes:
        input_size: side ``S`` of the square encoder input.
        resize: how the image becomes ``SxS``: ``"longest_side"`` -- SAM: longest side to
            ``S``, sizes rounded (``int(x + 0.5)``), zero pad bottom/right, prompts scaled
            per axis by ``new/old``; ``"longest_side_floor"`` -- NanoSAM: the short side
            truncated (``int(S / aspect)``), prompts scaled by the exact ``S / max(H, W)``;
            ``"stretch"`` -- EfficientSAM, SAM 2: both sides to ``S`` (aspect not kept),
            prompts scaled per axis.
        interpolation: resampling rule of :mod:`edge_sam_sdk.resize`: ``"pil_bilinear"``,
            ``"pil_bicubic"`` (Pillow on uint8), ``"torch_bilinear"`` (no antialias) or
            ``"torch_bilinear_aa"`` (antialias), the latter two on the float image.
        pixel_mean, pixel_std: per-channel RGB normalization in uint8 units.
        prompt_frame: longest side of the frame prompts are given to the decoder in (may
            exceed ``S``: EfficientViT-SAM L encodes 512 px but keeps SAM's 1024 frame).
        low_res_size: side of the decoder's low-resolution logits.
        mask_threshold: logits above this are foreground.
        pad_point: when a padding point ``(pad_coord, pad_coord)`` labelled -1 is appended:
            ``"no_box"`` -- SAM: when points are given without a box; ``"always"`` -- SAM 2:
            whenever there are points or a box; ``"never"`` -- NanoSAM, EfficientSAM.
        box_first: box corners (labels 2, 3) go before the clicks (SAM 2) instead of after.
        max_points: if > 0 the decoder takes exactly this many points (EfficientSAM: 6):
            prompts are padded with ``(pad_coord, pad_coord)`` labelled -1, more is an error.
        pad_coord: coordinate of padding points (SAM ignores it; EfficientSAM encodes it).
        postprocess: ``"sam"`` -- upscale the low-res logits to the prompt frame, crop the
            resized image, resize to the original size; ``"crop_low_res"`` -- NanoSAM: crop
            the low-res logits to the image's share of them, one resize to the original;
            ``"resize"`` -- stretch rules: one resize of the whole low-res map to the original.
        mask_interpolation: ``"torch_bilinear"`` or ``"torch_bicubic"`` (EfficientSAM).
        low_res_clamp: if > 0, returned low-res logits are clamped to ``[-c, c]`` (SAM 2: 32);
            masks are computed before clamping, as the official predictor does.
    """

    input_size: int = 1024
    resize: str = "longest_side"
    interpolation: str = "pil_bilinear"
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    prompt_frame: int = 1024
    low_res_size: int = 256
    mask_threshold: float = 0.0
    pad_point: str = "no_box"
    box_first: bool = False
    max_points: int = 0
    pad_coord: float = 0.0
    postprocess: str = "sam"
    mask_interpolation: str = "torch_bilinear"
    low_res_clamp: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.pad_point, bool):  # earlier manifests stored a flag
            object.__setattr__(self, "pad_point", "no_box" if self.pad_point else "never")
        for name, value, known in (("resize", self.resize, _RESIZE_RULES),
                                   ("interpolation", self.interpolation, R.RULES[:4]),
                                   ("postprocess", self.postprocess, _POSTPROCESS),
                                   ("pad_point", self.pad_point, _PAD_POINT),
                                   ("mask_interpolation", self.mask_interpolation, _MASK_RULES)):
            if value not in known:
                raise InputError(f"unknown {name} {value!r}; known: {sorted(known)}")
        if self.resize == "stretch" and self.postprocess == "sam":
            raise InputError("resize 'stretch' needs postprocess 'resize' (nothing to crop)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProcessingSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("pixel_mean", "pixel_std"):
            if key in known:
                known[key] = tuple(float(x) for x in known[key])
        return cls(**known)


# ------------------------------------------------------------------------ preprocessing


def resized_shape(original_size: tuple[int, int], long_side: int,
                  rule: str = "longest_side") -> tuple[int, int]:
    """``(h, w)`` of ``original_size`` after resize rule ``rule`` to side ``long_side``.

    SAM rounds both sides, NanoSAM truncates the short side computed from the aspect
    ratio, ``"stretch"`` gives ``(long_side, long_side)``.
    """
    h, w = original_size
    if rule == "stretch":
        return long_side, long_side
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
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:
        raise InputError(f"image is {image.shape[1]}x{image.shape[0]} pixels, over the SDK's limit of "
                         f"{MAX_IMAGE_PIXELS} ({MAX_IMAGE_PIXELS / 1e6:.0f} MP); downscale it first")
    return image


def check_geometry(original_size: tuple[int, int], spec: ProcessingSpec) -> None:
    """``InputError`` when an image of ``original_size`` ``(H, W)`` is too elongated for
    ``spec``: a resized side (encoder input, prompt frame, NanoSAM's low-res crop) would be
    0 pixels."""
    h, w = original_size
    sizes = [resized_shape(original_size, spec.input_size, spec.resize),
             resized_shape(original_size, spec.prompt_frame, spec.resize)]
    if spec.postprocess == "crop_low_res":
        low = spec.low_res_size
        sizes.append((low, int(low * w / h)) if h >= w else (int(low * h / w), low))
    if min(min(s) for s in sizes) < 1:
        raise InputError(f"image {w}x{h} is too elongated for this variant (aspect over "
                         f"{max(w / h, h / w):.0f}:1): resized, one side would be 0 pixels; crop it first")


def preprocess(image: np.ndarray, spec: ProcessingSpec) -> tuple[np.ndarray, tuple[int, int]]:
    """Image ``HxWx3`` uint8 RGB -> (encoder input ``1x3xSxS`` float32, resized ``(h, w)``)."""
    check_image(image)
    check_geometry(image.shape[:2], spec)
    new_h, new_w = resized_shape(image.shape[:2], spec.input_size, spec.resize)
    resized = R.resize_image(image, (new_h, new_w), spec.interpolation)
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


def postprocess_masks(low_res: np.ndarray, original_size: tuple[int, int],
                      spec: ProcessingSpec) -> np.ndarray:
    """Low-res logits ``(..., L, L)`` -> logits ``(..., H, W)`` at the original size.

    ``"sam"``: segment-anything's ``postprocess_masks`` -- upscale to the prompt frame
    ``F x F``, crop to the resized image in that frame, resize to ``original_size``.
    ``"crop_low_res"``: crop the ``L x L`` logits to the image's share (long side ``L``,
    short side truncated) and resize once. ``"resize"``: resize the whole map once. Each
    rule's linear steps are composed into one matrix per axis.
    """
    low_res = np.asarray(low_res, dtype=np.float32)
    ry, rx = _mask_operators(low_res.shape[-1], (int(original_size[0]), int(original_size[1])), spec)
    return R.apply_banded(R.apply_banded(low_res, ry, -2), rx, -1)


@lru_cache(maxsize=16)
def _mask_operators(size: int, original_size: tuple[int, int],
                    spec: ProcessingSpec) -> tuple[list[R.Block], list[R.Block]]:
    """The per-axis operators of :func:`postprocess_masks` (``oh x L``, ``ow x L``), composed
    in float64 and cut into banded blocks; cached per (size, original size, spec)."""
    oh, ow = original_size
    rule = spec.mask_interpolation
    if spec.postprocess == "resize":
        ry, rx = R.matrix(size, oh, rule), R.matrix(size, ow, rule)
    elif spec.postprocess == "crop_low_res":
        lim_h, lim_w = (size, int(size * ow / oh)) if oh >= ow else (int(size * oh / ow), size)
        ry, rx = np.zeros((oh, size)), np.zeros((ow, size))
        ry[:, :lim_h] = R.matrix(lim_h, oh, rule)
        rx[:, :lim_w] = R.matrix(lim_w, ow, rule)
    else:
        frame = spec.prompt_frame
        h, w = resized_shape(original_size, frame, spec.resize)
        up = R.matrix(size, frame, rule)
        ry = R.matrix(h, oh, rule) @ up[:h]
        rx = R.matrix(w, ow, rule) @ up[:w]
    return R.banded(ry), R.banded(rx)


def stability_score(logits: np.ndarray, threshold: float = 0.0, offset: float = 1.0) -> np.ndarray:
    """Per-mask ``#(logits > threshold + offset) / #(logits > threshold - offset)`` over the
    last two axes (segment-anything's stability score; 1.0 where nothing exceeds the lower
    threshold, as SAM 2 defines it)."""
    logits = np.asarray(logits)
    hi = (logits > threshold + offset).sum(axis=(-2, -1), dtype=np.int64)
    lo = (logits > threshold - offset).sum(axis=(-2, -1), dtype=np.int64)
    return np.where(lo > 0, hi / np.maximum(lo, 1), 1.0).astype(np.float32)


def select_tokens(low_res: np.ndarray, scores: np.ndarray, tokens: list[int],
                  fallback: dict[str, Any] | None = None, candidates: list[int] | None = None,
                  threshold: float = 0.0) -> np.ndarray:
    """Which mask tokens to return, ``BxC`` int64, from the decoder's ``BxMxLxL`` logits and
    ``BxM`` scores: ``tokens`` for every row, except with ``fallback`` (SAM 2's dynamic
    multimask, ``{"stability_delta", "stability_thresh"}``) when one token is asked for:
    where that token's stability score (offset ``stability_delta``) is below
    ``stability_thresh``, the ``candidates`` token with the highest score instead."""
    batch = low_res.shape[0]
    chosen = np.tile(np.asarray(tokens, dtype=np.int64)[None, :], (batch, 1))
    if fallback and len(tokens) == 1 and candidates:
        stability = stability_score(low_res[:, tokens[0]], threshold, float(fallback["stability_delta"]))
        cand = np.asarray(candidates, dtype=np.int64)
        best = cand[np.argmax(scores[:, cand], axis=1)]
        unstable = stability < float(fallback["stability_thresh"])
        chosen[:, 0] = np.where(unstable, best, chosen[:, 0])
    return chosen


def select_masks(low_res: np.ndarray, scores: np.ndarray, tokens: list[int],
                 fallback: dict[str, Any] | None = None, candidates: list[int] | None = None,
                 threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The logits ``BxCxLxL`` and scores ``BxC`` of :func:`select_tokens`' tokens."""
    chosen = select_tokens(low_res, scores, tokens, fallback, candidates, threshold)
    rows = np.arange(low_res.shape[0])[:, None]
    return low_res[rows, chosen], scores[rows, chosen]


def threshold_masks(logits: np.ndarray, spec: ProcessingSpec) -> np.ndarray:
    """Boolean masks: ``logits > mask_threshold``."""
    return np.asarray(logits) > spec.mask_threshold


# ------------------------------------------------------------------------------ prompts


def decoder_prompts(
    coords: np.ndarray | None,
    labels: np.ndarray | None,
    boxes: np.ndarray | None,
    batch: int = 1,
    spec: ProcessingSpec | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points and boxes (already in the prompt frame) -> the decoder's ``point_coords``
    ``BxNx2`` and ``point_labels`` ``BxN`` float32, by ``spec``'s prompt rules.

    ``coords`` is ``BxNx2`` with ``labels`` ``BxN``; ``boxes`` is ``Bx2x2`` corners, which
    become two points labelled 2 and 3, after the clicks (or before: ``box_first``). A
    padding point is appended per ``pad_point``; ``max_points`` pads to a fixed count. With
    neither points nor box (and no fixed count) the result has ``N = 0``.
    """
    spec = spec or ProcessingSpec()
    parts_c: list[np.ndarray] = []
    parts_l: list[np.ndarray] = []
    if coords is not None:
        batch = coords.shape[0]
        parts_c.append(np.asarray(coords, dtype=np.float32))
        parts_l.append(np.asarray(labels, dtype=np.float32))
    if boxes is not None:
        batch = boxes.shape[0]
        at = 0 if spec.box_first else len(parts_c)
        parts_c.insert(at, np.asarray(boxes, dtype=np.float32).reshape(batch, 2, 2))
        parts_l.insert(at, np.tile(np.array([[2.0, 3.0]], dtype=np.float32), (batch, 1)))
    pad = {"always": bool(parts_c), "no_box": coords is not None and boxes is None, "never": False}
    n = sum(p.shape[1] for p in parts_c)
    if spec.max_points:
        if n > spec.max_points:
            raise InputError(f"this variant's decoder takes at most {spec.max_points} prompt points "
                             f"(a box counts as 2), got {n}")
        extra = spec.max_points - n
    else:
        extra = 1 if pad[spec.pad_point] else 0
    if extra:
        parts_c.append(np.full((batch, extra, 2), spec.pad_coord, dtype=np.float32))
        parts_l.append(np.full((batch, extra), -1.0, dtype=np.float32))
    if not parts_c:
        return np.zeros((batch, 0, 2), np.float32), np.zeros((batch, 0), np.float32)
    return np.concatenate(parts_c, axis=1), np.concatenate(parts_l, axis=1)
