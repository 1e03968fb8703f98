"""Calibration data: a folder of images, preprocessed as the bundle's encoder expects.

TensorRT-independent, so int8 calibration of any target can share it: the TensorRT entropy
calibrator (``exporters.tensorrt_export``) copies its batches to the GPU, an ONNX quantizer
can take :meth:`ImageBatcher.feeds` as its data reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_sam_sdk.errors import InputError
from edge_sam_sdk.processing import ProcessingSpec, preprocess
from edge_sam_sdk.visualize import load_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


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
                batch[i] = preprocess(load_image(f), self.spec)[0][0]
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
