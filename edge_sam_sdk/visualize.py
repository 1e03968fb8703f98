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
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=(255, 215, 0),
                       width=max(2, r // 2))
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
    """Write ``image`` (``HxWx3`` uint8) to ``path`` in the format its suffix names, atomically
    (a temporary file renamed into place: never a partial file)."""
    from PIL import Image

    from .atomic import atomic_path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(str(tmp), format=image_format(path))


def image_format(path: str | Path) -> str:
    """The Pillow format that writes ``path`` by its suffix (``InputError`` if none does)."""
    from PIL import Image

    from .errors import InputError

    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if not suffix or fmt is None or fmt not in Image.SAVE:
        known = [".png", ".jpg", ".webp", ".bmp", ".tif"]
        raise InputError(f"cannot write an image to {str(path)!r}: "
                         f"{'no' if not suffix else 'unknown'} file extension {suffix!r}; use e.g. {known}")
    return str(fmt)


#: 16-bit modes Pillow opens single-channel 16-bit files in (PNG, TIFF, PGM).
_MODES_16 = ("I;16", "I;16B", "I;16L", "I;16N")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``HxWx3`` uint8 RGB; ``InputError`` (one line) otherwise.

    Modes: RGB as is; grayscale, palette, CMYK, YCbCr and the alpha modes (alpha dropped)
    through Pillow's ``convert("RGB")``; 16-bit grayscale (``I;16*``, and ``I`` holding
    0..65535) scaled to 8 bits as ``round(v * 255 / 65535)``; 32-bit float (``F``) and other
    modes are refused. Images over :data:`edge_sam_sdk.processing.MAX_IMAGE_PIXELS` are
    refused before they are decoded (Pillow's decompression-bomb check included).
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    from .errors import InputError
    from .processing import MAX_IMAGE_PIXELS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise InputError(f"{path} is {w}x{h} pixels, over the limit of {MAX_IMAGE_PIXELS} "
                                     f"({MAX_IMAGE_PIXELS / 1e6:.0f} MP); downscale it first")
                return _to_rgb(im, path)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not an image file") from None
    except Image.DecompressionBombError:
        raise InputError(f"{path} is too large to decode safely (Pillow's decompression-bomb limit); "
                         "downscale it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read {path} as an image: {' '.join(str(exc).split())}") from None


def _to_rgb(im: object, path: str | Path) -> np.ndarray:
    from PIL import Image

    from .errors import InputError

    assert isinstance(im, Image.Image)
    if im.mode == "RGB":
        return np.asarray(im)
    if im.mode in _MODES_16 or im.mode == "I":
        values = np.asarray(im).astype(np.int64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise InputError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
        gray = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if im.mode in ("1", "L", "LA", "P", "PA", "RGBA", "RGBX", "RGBa", "La", "CMYK", "YCbCr"):
        return np.asarray(im.convert("RGB"))
    raise InputError(f"{path}: image mode {im.mode!r} is not supported (convert it to 8-bit RGB first)")


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
