"""Pictures of results: mask overlays with prompts, and the built-in demo image (Pillow)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

_PALETTE = np.array([[30, 144, 255], [255, 99, 71], [50, 205, 50], [238, 130, 238],
                     [255, 215, 0], [0, 206, 209], [255, 140, 0], [147, 112, 219]], dtype=np.float32)


def overlay(image: np.ndarray, masks: np.ndarray, points: np.ndarray | None = None,
            labels: np.ndarray | None = None, boxes: Sequence[Sequence[float]] | None = None,
            alpha: float = 0.5) -> np.ndarray:
    """Blend boolean ``masks`` (``CxHxW``) over ``image`` (``HxWx3`` uint8); draw prompts.

    Foreground points are green, background points red, boxes yellow.
    """
    from PIL import Image, ImageDraw

    out = image.astype(np.float32).copy()
    for i, m in enumerate(np.asarray(masks, dtype=bool)):
        color = _PALETTE[i % len(_PALETTE)]
        out[m] = out[m] * (1 - alpha) + color * alpha
    pil = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    r = max(3, min(image.shape[:2]) // 100)
    if points is not None:
        labs = np.ones(len(points)) if labels is None else np.asarray(labels)
        for (x, y), lab in zip(np.asarray(points), labs, strict=True):
            fill = (0, 200, 0) if lab == 1 else (220, 0, 0)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=(255, 255, 255), width=2)
    for box in boxes or []:
        draw.rectangle([float(v) for v in box], outline=(255, 215, 0), width=max(2, r // 2))
    return np.asarray(pil)


def color_overlay(image: np.ndarray, masks: Iterable[np.ndarray], alpha: float = 0.5,
                  seed: int = 0) -> np.ndarray:
    """Blend each boolean ``HxW`` mask of ``masks`` over ``image`` (``HxWx3`` uint8) in its
    own colour (random, from ``seed``), in the given order: pass the largest first so that
    small masks stay visible (as segment-anything's ``show_anns``)."""
    rng = np.random.default_rng(seed)
    out = image.astype(np.float32).copy()
    for m in masks:
        color = rng.integers(40, 256, size=3).astype(np.float32)
        m = np.asarray(m, dtype=bool)
        out[m] = out[m] * (1 - alpha) + color * alpha
    return out.clip(0, 255).astype(np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(str(path))


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``HxWx3`` uint8 RGB (clear error if unreadable)."""
    from PIL import Image, UnidentifiedImageError

    from .errors import InputError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise InputError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read {path} as an image: {exc}") from None


def demo_image(height: int = 600, width: int = 900) -> np.ndarray:
    """The built-in demo picture, drawn here (no external file): a sky/ground scene with
    a sun, a house, a tree and a ball, so prompts have distinct objects to hit."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    horizon = int(height * 0.62)
    sky = yy < horizon
    t = (yy / horizon)[..., None]
    img[:] = (1 - t) * np.array([110, 170, 235]) + t * np.array([200, 225, 245])
    g = ((yy - horizon) / (height - horizon))[..., None]
    ground = (1 - g) * np.array([95, 160, 70]) + g * np.array([60, 115, 45])
    img[~sky] = ground[~sky]
    def disc(cx: float, cy: float, r: float) -> np.ndarray:
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    img[disc(width * 0.82, height * 0.18, height * 0.09)] = [250, 210, 60]  # sun
    hx0, hx1 = int(width * 0.18), int(width * 0.46)
    hy0, hy1 = int(height * 0.38), int(height * 0.75)
    img[hy0:hy1, hx0:hx1] = [190, 80, 60]  # house wall
    roof = (yy >= hy0 - (hx1 - hx0) * 0.45 + np.abs(xx - (hx0 + hx1) / 2) * 0.9) & (yy < hy0) \
        & (xx >= hx0 - 10) & (xx <= hx1 + 10)
    img[roof] = [110, 60, 50]
    dx0 = int((hx0 + hx1) / 2 - width * 0.03)
    img[int(height * 0.58):hy1, dx0:dx0 + int(width * 0.06)] = [90, 55, 35]  # door
    tx = int(width * 0.66)
    img[int(height * 0.45):int(height * 0.78), tx - 12:tx + 12] = [100, 70, 40]  # trunk
    img[disc(tx, height * 0.38, height * 0.13)] = [40, 120, 50]  # crown
    img[disc(width * 0.55, height * 0.86, height * 0.06)] = [230, 40, 120]  # ball
    rng = np.random.default_rng(0)
    img += rng.normal(0, 3.0, img.shape)  # a little texture
    return img.clip(0, 255).astype(np.uint8)
