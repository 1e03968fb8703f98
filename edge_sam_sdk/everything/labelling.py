"""Auto-labelling: segment everything over a folder or a list of images into one COCO file.

    from edge_sam_sdk.everything.labelling import label
    summary = label("photos/", "bundles/mobile_sam", "annotations.json", {"sampling": "hierarchical"})

Inputs (:func:`list_images`): a folder (image files found recursively, sorted, named by their
path relative to the folder) or a text file with one image path per line (relative paths
from the file's folder; blank lines and ``#`` comments skipped).

Resumable: each finished image is appended as one JSON line to the *journal*, the folder
``<out>.parts/`` next to the output (``journal.jsonl``; Ray runs add ``ray-*.jsonl`` shards),
with ``settings.json`` recording the bundle and generator settings. A rerun with the same
settings skips every image already there; other settings are refused (use another ``--out``
or delete the folder). A line cut short by a kill is ignored. An image that cannot be read or
segmented is reported (``failed`` in the summary and in the output's ``info``), skipped and
retried on the next run. The COCO file (:mod:`.coco`) is written atomically from the journal
at the end, in input order.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import EdgeSamError, InputError
from . import coco

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
GENERATOR_KEYS = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh",
                  "stability_score_offset", "box_nms_thresh", "crop_n_layers", "crop_nms_thresh",
                  "crop_overlap_ratio", "crop_n_points_downscale_factor", "min_mask_region_area",
                  "sampling", "high_score_thresh", "mode")

Item = tuple[str, str]  # (file_name in the output, path to read)


def list_images(source: str | Path) -> list[Item]:
    """``(file_name, path)`` of every image of a folder or a list file, in order."""
    src = Path(source)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        items = [(p.relative_to(src).as_posix(), str(p)) for p in files]
    elif src.is_file():
        try:
            lines = src.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"{src} is neither a folder nor a text list of image paths") from None
        items = []
        for line in lines:
            name = line.strip()
            if name and not name.startswith("#"):
                path = Path(name) if Path(name).is_absolute() else src.parent / name
                items.append((name, str(path)))
    else:
        raise InputError(f"{src} does not exist (give a folder of images or a text file listing them)")
    if not items:
        raise InputError(f"{src} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise InputError(f"{src} lists some images twice: {dup}")
    return items


def generator_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The generator keyword arguments of ``settings`` (unknown keys refused)."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(GENERATOR_KEYS))
    if unknown:
        raise InputError(f"unknown labelling settings {unknown}; known: {list(GENERATOR_KEYS)}")
    return settings


def make_generator(bundle: str | Path, settings: dict[str, Any], threads: int | None = None) -> Any:
    """An :class:`AutomaticMaskGenerator` over the bundle at ``bundle``, COCO RLE output."""
    from ..bundle import load_bundle
    from .generator import AutomaticMaskGenerator

    loaded = load_bundle(bundle, threads=threads) if threads else load_bundle(bundle)
    return AutomaticMaskGenerator(loaded, output_mode="coco_rle", **settings)


def label_image(generator: Any, file_name: str, path: str,
                boxes: dict[str, Any] | None = None) -> dict[str, Any]:
    """One journal entry: ``{"file_name", "width", "height", "records", "seconds"}``, or
    ``{"file_name", "error"}`` when the image cannot be read or segmented."""
    import numpy as np

    from ..visualize import load_image

    t0 = time.perf_counter()
    try:
        image = load_image(path)
        prompts = None
        if generator.sampling == "boxes":
            prompts = np.asarray((boxes or {}).get(file_name, []), dtype=np.float64).reshape(-1, 4)
        records = generator.generate(image, boxes=prompts)
    except (EdgeSamError, OSError, ValueError, MemoryError) as exc:
        return {"file_name": file_name, "error": f"{type(exc).__name__}: {exc}"}
    h, w = image.shape[:2]
    return {"file_name": file_name, "width": int(w), "height": int(h), "records": records,
            "seconds": round(time.perf_counter() - t0, 3)}


class Journal:
    """The ``<out>.parts/`` folder: ``settings.json`` and JSON-lines files of entries."""

    def __init__(self, out: str | Path, fingerprint: dict[str, Any]) -> None:
        self.dir = Path(f"{out}.parts")
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp = self.dir / "settings.json"
        text = json.dumps(fingerprint, sort_keys=True)
        if stamp.exists():
            if stamp.read_text(encoding="utf-8") != text:
                raise InputError(f"{self.dir} holds a run with other settings or bundle ({stamp}); "
                                 "use another --out or delete that folder to start over")
        else:
            coco.write_atomic(stamp, text)

    def entries(self) -> dict[str, dict[str, Any]]:
        """Finished images by file name (a success wins over an error; a cut line is skipped)."""
        done: dict[str, dict[str, Any]] = {}
        for part in sorted(self.dir.glob("*.jsonl")):
            for line in part.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                name = entry.get("file_name")
                if isinstance(name, str) and ("error" not in entry or name not in done):
                    done[name] = entry
        return done

    def append(self, entries: Iterable[dict[str, Any]], name: str = "journal.jsonl") -> None:
        """Append entries (one line each, flushed and synced) to the part ``name``."""
        with open(self.dir / name, "a", encoding="utf-8") as f:
            for entry in entries:
                f.write(json.dumps(entry, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())


def pending(items: list[Item], done: dict[str, dict[str, Any]]) -> list[Item]:
    """Items without a successful journal entry."""
    return [it for it in items if it[0] not in done or "error" in done[it[0]]]


def progress_bar(total: int, enabled: bool, initial: int = 0) -> Any:
    """A tqdm bar in images per second on stderr (a no-op without tqdm or when disabled)."""
    try:
        from tqdm import tqdm
    except ImportError:
        enabled = False
    if not enabled:
        class _Nothing:
            def update(self, n: int = 1) -> None: ...
            def set_postfix_str(self, s: str) -> None: ...
            def close(self) -> None: ...
        return _Nothing()
    return tqdm(total=total, initial=initial, unit="img", file=sys.stderr, dynamic_ncols=True)


def finish(out: str | Path, items: list[Item], journal: Journal, info: dict[str, Any]) -> dict[str, Any]:
    """Write the COCO file from the journal, in input order; returns the summary."""
    done = journal.entries()
    ok = [done[n] for n, _ in items if n in done and "error" not in done[n]]
    failed = [{"file_name": n, "error": done[n]["error"]}
              for n, _ in items if n in done and "error" in done[n]]
    missing = [n for n, _ in items if n not in done]
    doc = coco.build(ok, dict(info, failed=failed, missing=missing))
    coco.write(out, doc)
    return {"out": str(out), "images": len(ok), "annotations": len(doc["annotations"]), "failed": failed,
            "missing": missing, "journal": str(journal.dir)}


def fingerprint(bundle: str | Path, settings: dict[str, Any]) -> dict[str, Any]:
    """What a journal's entries depend on: the bundle's manifest and the settings."""
    manifest = Path(bundle) / "manifest.json"
    try:
        text = manifest.read_text(encoding="utf-8")
    except OSError:
        raise InputError(f"{bundle} is not a bundle folder (no readable manifest.json)") from None
    import hashlib

    return {"bundle_manifest_sha256": hashlib.sha256(text.encode()).hexdigest(), "settings": settings}


def label(source: str | Path, bundle: str | Path, out: str | Path, settings: dict[str, Any] | None = None,
          threads: int | None = None, boxes: dict[str, Any] | None = None, progress: bool = True,
          say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Label every image of ``source`` into the COCO file ``out`` in this process (module
    docstring). ``boxes``: for sampling="boxes", ``{file_name: [[x0, y0, x1, y1], ...]}``.
    Returns ``{"out", "images", "annotations", "failed", "missing", "journal"}``."""
    settings = generator_settings(settings)
    items = list_images(source)
    generator = make_generator(bundle, settings, threads)  # bad settings fail before any file is written
    journal = Journal(out, fingerprint(bundle, settings))
    todo = pending(items, journal.entries())
    if say:
        say(f"{len(items)} images, {len(items) - len(todo)} already labelled in {journal.dir}")
    bar = progress_bar(len(items), progress, len(items) - len(todo))
    try:
        for entry in _run(generator, todo, boxes):
            journal.append([entry])
            bar.update(1)
            if "error" in entry and say:
                say(f"skipped {entry['file_name']}: {entry['error']}")
    finally:
        bar.close()
    return finish(out, items, journal, {"description": "edgesam label", "settings": settings})


def _run(generator: Any, todo: list[Item], boxes: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    for name, path in todo:
        yield label_image(generator, name, path, boxes)
