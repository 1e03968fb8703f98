"""COCO-format annotation files from segment-everything records, written atomically.

The file holds ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations``
(``id``, ``image_id``, ``category_id``, ``segmentation`` as COCO compressed RLE
``{"size": [h, w], "counts": str}``, ``area``, ``bbox`` XYWH, ``iscrowd`` 0, ``score`` (the
predicted IoU), ``predicted_iou``, ``stability_score``, ``point_coords``, ``crop_box``),
``categories`` (segment-everything has no classes: one, ``{"id": 1, "name": "object"}``) and
``info``. Image ids are 1.. in input order, annotation ids 1.. in image order then record
order, so the same inputs give the same file however the work was spread.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}


def annotation(record: dict[str, Any], ann_id: int, image_id: int) -> dict[str, Any]:
    """One COCO annotation of a generator record (``output_mode="coco_rle"``)."""
    return {
        "id": ann_id, "image_id": image_id, "category_id": CATEGORY["id"],
        "segmentation": record["segmentation"], "area": int(record["area"]),
        "bbox": [int(v) for v in record["bbox"]], "iscrowd": 0,
        "score": float(record["predicted_iou"]), "predicted_iou": float(record["predicted_iou"]),
        "stability_score": float(record["stability_score"]),
        "point_coords": record["point_coords"], "crop_box": record["crop_box"],
    }


def build(results: Iterable[dict[str, Any]], info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The COCO document of per-image results in input order, each ``{"file_name", "width",
    "height", "records": [...]}``."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, res in enumerate(results, start=1):
        images.append({"id": image_id, "file_name": res["file_name"], "width": int(res["width"]),
                       "height": int(res["height"])})
        for rec in res["records"]:
            annotations.append(annotation(rec, len(annotations) + 1, image_id))
    return {"info": dict(info or {}), "images": images, "annotations": annotations,
            "categories": [dict(CATEGORY)]}


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename,
    so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(path: str | Path, doc: dict[str, Any]) -> None:
    """:func:`write_atomic` of ``doc`` as compact JSON."""
    write_atomic(path, json.dumps(doc, separators=(",", ":")))
