"""Calibration images for reduced-precision exports: a folder of photos, or generated scenes.

``--calibration-images DIR`` reads every image file in ``DIR`` (sorted by name, not
recursive). Every fifth image (the 5th, 10th, ...) is *held out*: it is not used for
calibration and is one of the images the quality report compares on. Without a folder, the
default set is :func:`default_scenes`: deterministic pictures this project draws itself
(random discs, boxes, stripes and a horizon over a gradient, with mild noise), so exports are
reproducible and no photo is shipped. The built-in demo picture
(:func:`edge_sam_sdk.visualize.demo_image`) is never calibrated on and is always held out.

Images are ``HxWx3`` uint8 RGB; the graphs see them through the variant's own
pre-processing (:func:`edge_sam_sdk.processing.preprocess`), exactly as the predictor does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_sam_sdk.errors import EdgeSamError

Image = tuple[str, np.ndarray]  #: (name, HxWx3 uint8 RGB)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_SCENES = 8  #: generated calibration scenes when no folder is given
HOLD_OUT_EVERY = 5  #: every 5th image of a folder is held out for the quality report


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


def default_scenes(n: int = DEFAULT_SCENES, height: int = 768, width: int = 1024) -> list[Image]:
    """``n`` deterministic generated scenes (seed ``1..n``), ``height x width x 3`` uint8."""
    return [(f"scene_{seed:02d}", scene(seed, height, width)) for seed in range(1, n + 1)]


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
    if not path.is_dir():
        raise EdgeSamError(f"calibration image folder not found: {path}")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
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


def calibration_set(folder: str | Path | None = None) -> CalibrationSet:
    """The calibration/held-out split of ``folder``, or of the generated default scenes.

    The demo picture is always appended to the held-out images.
    """
    from edge_sam_sdk.visualize import demo_image

    if folder is None:
        images, source = default_scenes(), f"generated:{DEFAULT_SCENES}"
        calibrate, held_out = images, []
    else:
        images, source = read_folder(folder), str(Path(folder))
        held_out = [im for i, im in enumerate(images, start=1) if i % HOLD_OUT_EVERY == 0]
        calibrate = [im for i, im in enumerate(images, start=1) if i % HOLD_OUT_EVERY != 0]
    return CalibrationSet(calibrate, held_out + [("demo_image", demo_image())], source)
