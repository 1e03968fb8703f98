"""Video frames: reading (a folder of JPEGs, a video file, an iterator) and the model input.

The model input follows the official video predictor (``load_video_frames_from_jpg_images``),
which differs from the image predictor: Pillow's ``resize((S, S))`` with BICUBIC on the uint8
RGB frame (a stretch, no padding), ``/ 255``, then ImageNet mean/std in float32.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def check_frame(frame: Any) -> np.ndarray:
    """An ``HxWx3`` uint8 RGB frame, or :class:`InputError` naming what is wrong."""
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InputError(f"a video frame must be an HxWx3 uint8 RGB array, got shape {arr.shape} "
                         f"dtype {arr.dtype}")
    return arr


def model_input(frame: np.ndarray, size: int = 1024) -> np.ndarray:
    """``HxWx3`` uint8 RGB -> ``1x3xSxS`` float32, normalized (the official video rule)."""
    from PIL import Image

    img = Image.fromarray(check_frame(frame)).resize((size, size), Image.Resampling.BICUBIC)
    x = (np.asarray(img, dtype=np.float64) / 255.0).astype(np.float32)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def frame_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` sorted by the integer value of their stem (``00012.jpg``)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(f"no frames (*.jpg, *.jpeg, *.png) in {folder}")
    try:
        return sorted(files, key=lambda p: int(p.stem))
    except ValueError:
        bad = next(p.name for p in files if not p.stem.isdigit())
        raise InputError(f"frame files must be named by their index (00000.jpg, ...): "
                         f"{folder / bad}") from None


def read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise InputError(f"cannot read frame {path}: {exc}") from None


def read_video_file(path: Path) -> Iterator[np.ndarray]:
    """Frames of a video file through ``imageio`` (its ``pyav`` plugin; the ``video`` extra)."""
    try:
        import imageio.v3 as iio
    except ImportError:
        raise InputError(f"reading video files ({path.name}) needs imageio and av; install them with: "
                         "pip install 'edgesam[video]'") from None
    try:
        for frame in iio.imiter(path, plugin="pyav"):
            yield np.ascontiguousarray(np.asarray(frame)[..., :3])
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"cannot read video {path}: {exc}") from None


def iter_frames(source: Any) -> Iterator[np.ndarray]:
    """``HxWx3`` uint8 RGB frames from a folder of numbered images, a video file, or an
    iterable of frames (arrays or image paths)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            for f in frame_files(path):
                yield read_image(f)
            return
        if not path.is_file():
            raise InputError(f"video not found: {path}")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise InputError(f"{path} is one image; pass the folder of frames or a video file")
        yield from read_video_file(path)
        return
    if isinstance(source, np.ndarray) and source.ndim == 4:
        source = list(source)
    if not isinstance(source, Iterable):
        raise InputError(f"video must be a folder, a video file or an iterable of frames, got "
                         f"{type(source).__name__}")
    for item in source:
        yield read_image(Path(item)) if isinstance(item, (str, Path)) else check_frame(item)
