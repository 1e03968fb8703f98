"""Calibration images for reduced-precision exports (ONNX int8/fp16, TensorRT int8, TFLite).

``--calibration-images DIR`` reads every image file in ``DIR`` (sorted by name, not
recursive). For the ONNX quality report every fifth image (the 5th, 10th, ...) is *held
out*: it is not used for calibration and is one of the images the report compares on.
Without a folder, the default set is :func:`default_scenes`: deterministic pictures this
project draws itself (random discs, boxes, stripes and a horizon over a gradient, with mild
noise), so exports are reproducible and no photo is shipped. The built-in demo picture
(:func:`edge_sam_sdk.visualize.demo_image`) is never calibrated on and is always held out.

Images are ``HxWx3`` uint8 RGB; the graphs see them through the variant's own
pre-processing (:func:`edge_sam_sdk.processing.preprocess`), exactly as the predictor does.
:class:`ImageBatcher` and :class:`CalibrationStream` hand preprocessed batches to a
calibrator (TensorRT's entropy calibrator copies them to the GPU); they need no TensorRT.
"""


from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_sam_sdk.errors import EdgeSamError, InputError
from edge_sam_sdk.processing import ProcessingSpec, preprocess

Image = tuple[str, np.ndarray]  #: (name, HxWx3 uint8 RGB)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_SCENES = 8  #: generated calibration scenes when no folder is given
HOLD_OUT_EVERY = 5  #: every 5th image of a folder is held out for the quality report
SCENE_SIZES = ((768, 1024),)  #: (height, width) of the generated scenes (ONNX, TensorRT)
#: Several aspect ratios (TFLite int8: its per-tensor ranges over all images must cover the
#: padding each aspect ratio leaves; on truck.jpg, 2:3, one 3:4 size gave mask IoU 0.949, these 0.967).
MIXED_SIZES = ((600, 900), (768, 1024), (1024, 768), (480, 640), (720, 1280), (800, 800), (640, 480))


@dataclass
class CalibrationSet:
    """Images to calibrate on and images held out for the quality report."""

    calibrate: list[Image]
    held_out: list[Image]
    source: str  #: the folder, or ``"generated:<n>"``
    facts: dict[str, object] = field(default_factory=dict)

    def manifest(self) -> dict[str, object]:
        """What the bundle manifest records about the calibration data."""
        return {"source": self.source, "images": len(self.calibrate),
                "calibration_names": [n for n, _ in self.calibrate],
                "held_out": [n for n, _ in self.held_out], **self.facts}


def default_scenes(n: int = DEFAULT_SCENES,
                   sizes: tuple[tuple[int, int], ...] = SCENE_SIZES) -> list[Image]:
    """``n`` deterministic generated scenes (seed ``1..n``), ``HxWx3`` uint8, cycling through ``sizes``."""
    return [(f"scene_{seed:02d}", scene(seed, *sizes[(seed - 1) % len(sizes)])) for seed in range(1, n + 1)]


def scene(seed: int, height: int = 768, width: int = 1024) -> np.ndarray:
    """One generated picture: a two-tone gradient, a horizon, and 6-11 random objects."""
    rng = np.random.default_rng([0x5CE, seed])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    t = (yy / height)[..., None]
    img = (1 - t) * top + t * bottom
    horizon = rng.uniform(0.35, 0.75) * height
    img[yy > horizon + 20 * np.sin(xx / rng.uniform(40, 160))] = rng.uniform(20, 200, 3)
    for _ in range(int(rng.integers(6, 12))):
        color = rng.uniform(0, 255, 3)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        size = rng.uniform(0.04, 0.22) * min(height, width)
        kind = rng.integers(0, 3)
        if kind == 0:  # disc
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= size ** 2
        elif kind == 1:  # box
            mask = (np.abs(xx - cx) <= size) & (np.abs(yy - cy) <= size * rng.uniform(0.4, 1.6))
        else:  # striped patch
            mask = (np.abs(xx - cx) <= size) & (np.abs(yy - cy) <= size) & ((xx // 9) % 2 == 0)
        img[mask] = color
    img += rng.normal(0, 4.0, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def read_folder(folder: str | Path) -> list[Image]:
    """Every readable image in ``folder`` (sorted by name); ``EdgeSamError`` if there is none."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    path = Path(folder)
    files = image_files(path)
    images: list[Image] = []
    for p in files:
        try:
            with PILImage.open(p) as im:
                images.append((p.name, np.asarray(im.convert("RGB"))))
        except (UnidentifiedImageError, OSError):
            continue  # an unreadable file is skipped; none readable at all is an error below
    if not images:
        raise EdgeSamError(f"no readable calibration images in {path} (looked for "
                           f"{', '.join(IMAGE_SUFFIXES)} files); pass a folder of photos")
    return images


def calibration_set(folder: str | Path | None = None,
                    sizes: tuple[tuple[int, int], ...] = SCENE_SIZES) -> CalibrationSet:
    """The calibration/held-out split of ``folder``, or of the generated default scenes
    (drawn at ``sizes``).

    The demo picture is always appended to the held-out images.
    """
    from edge_sam_sdk.visualize import demo_image

    if folder is None:
        images, source = default_scenes(sizes=sizes), f"generated:{DEFAULT_SCENES}"
        calibrate, held_out = images, []
    else:
        images, source = read_folder(folder), str(Path(folder))
        held_out = [im for i, im in enumerate(images, start=1) if i % HOLD_OUT_EVERY == 0]
        calibrate = [im for i, im in enumerate(images, start=1) if i % HOLD_OUT_EVERY != 0]
    return CalibrationSet(calibrate, held_out + [("demo_image", demo_image())], source)


def image_files(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files of ``folder`` (by suffix, case-insensitive), sorted by name, at most ``limit``.

    Raises ``InputError`` when the folder does not exist or holds no image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"calibration image folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no calibration images in {root} (looked for {', '.join(IMAGE_SUFFIXES)})")
    if limit is not None:
        if limit < 1:
            raise InputError(f"calibration image limit must be >= 1, got {limit}")
        files = files[:limit]
    return files


class ImageBatcher:
    """Batches of preprocessed images: ``batch_size x 3 x S x S`` float32, C-contiguous.

    Each image is read as RGB and run through :func:`edge_sam_sdk.processing.preprocess`
    with ``spec`` (the variant's resize rule, padding and normalization), exactly what the
    encoder sees at run time. The last batch is dropped when incomplete, so every batch has
    ``batch_size`` images (engines and calibrators take one fixed batch size); with fewer
    images than ``batch_size`` there is no batch, which is an ``InputError``.

    Args:
        folder: folder of images (jpg, png, bmp, webp, tif).
        spec: the variant's processing (``get_variant(name).processing``).
        batch_size: images per batch (our encoders take 1).
        limit: use at most this many images (sorted by file name).
    """

    def __init__(self, folder: str | Path, spec: ProcessingSpec, batch_size: int = 1,
                 limit: int | None = None):
        if batch_size < 1:
            raise InputError(f"calibration batch size must be >= 1, got {batch_size}")
        self.files = image_files(folder, limit)
        self.spec = spec
        self.batch_size = batch_size
        self.num_batches = len(self.files) // batch_size
        if self.num_batches == 0:
            raise InputError(f"{len(self.files)} calibration image(s) in {folder}: fewer than one batch "
                             f"of {batch_size}")
        self.shape = (batch_size, 3, spec.input_size, spec.input_size)

    @property
    def nbytes(self) -> int:
        """Bytes of one batch (float32)."""
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[np.ndarray]:
        for b in range(self.num_batches):
            files = self.files[b * self.batch_size:(b + 1) * self.batch_size]
            batch = np.empty(self.shape, dtype=np.float32)
            for i, f in enumerate(files):
                batch[i] = preprocess(_load_rgb(f), self.spec)[0][0]
            yield batch

    def feeds(self, input_name: str = "image") -> Iterator[dict[str, np.ndarray]]:
        """The batches as ``{input_name: batch}`` feeds (an onnxruntime-style data reader)."""
        for batch in self:
            yield {input_name: batch}


class CalibrationStream:
    """What an int8 calibrator does besides copying to the device: hands out each batch of
    ``batcher`` once, then ``None``; reads and writes the calibration cache file.

    A calibrator whose cache file already exists reads it and is never asked for batches
    (TensorRT skips calibration), so ``batcher`` may be ``None`` when a cache is given.
    """

    def __init__(self, batcher: ImageBatcher | None, cache: str | Path):
        self.batcher = batcher
        self.cache = Path(cache)
        self.batch_size = batcher.batch_size if batcher is not None else 1
        self._batches = iter(batcher) if batcher is not None else iter(())
        self.served = 0

    def next_batch(self) -> np.ndarray | None:
        """The next ``batch_size x 3 x S x S`` float32 batch, or ``None`` when all were served."""
        batch = next(self._batches, None)
        if batch is not None:
            self.served += 1
        return batch

    def read_cache(self) -> bytes | None:
        """The cache file's bytes, or ``None`` (calibrate from the images) when there is none."""
        return self.cache.read_bytes() if self.cache.is_file() else None

    def write_cache(self, data: bytes) -> None:
        """Store the calibration table TensorRT computed."""
        self.cache.write_bytes(bytes(data))

def _load_rgb(path: Path) -> np.ndarray:
    from edge_sam_sdk.visualize import load_image

    return load_image(path)
