"""How far two record lists agree (fast mode against exact mode, or ours against a golden).

Records are matched one to one: each record of ``reference`` takes the unused record of
``candidate`` from the same prompt (``point_coords``) with the highest mask IoU, and the pair
counts as matched when that IoU is at least ``min_iou``. Masks are compared at full size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import mask_ops as M


def _mask(rec: dict[str, Any]) -> np.ndarray:
    seg = rec["segmentation"]
    return np.asarray(seg, bool) if isinstance(seg, np.ndarray) else M.rle_to_mask(seg)


def _key(rec: dict[str, Any]) -> tuple[float, ...]:
    return tuple(np.round(np.asarray(rec["point_coords"], float).ravel(), 6).tolist())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)


def compare(reference: list[dict[str, Any]], candidate: list[dict[str, Any]],
            min_iou: float = 0.5) -> dict[str, Any]:
    """``{"reference", "candidate"}`` (counts), ``matched``, ``share_matched`` (of the
    reference), ``mask_iou_min`` / ``mask_iou_mean`` over matched pairs, ``bbox_equal`` (matched
    pairs with equal boxes)."""
    by_point: dict[tuple[float, ...], list[int]] = {}
    for j, rec in enumerate(candidate):
        by_point.setdefault(_key(rec), []).append(j)
    used: set[int] = set()
    ious: list[float] = []
    boxes_equal = 0
    for rec in reference:
        options = [j for j in by_point.get(_key(rec), []) if j not in used]
        if not options:
            continue
        mask = _mask(rec)
        scored = [(_iou(mask, _mask(candidate[j])), j) for j in options]
        best, j = max(scored)
        if best >= min_iou:
            used.add(j)
            ious.append(best)
            boxes_equal += int(list(rec["bbox"]) == list(candidate[j]["bbox"]))
    n = len(reference)
    return {"reference": n, "candidate": len(candidate), "matched": len(ious),
            "share_matched": round(len(ious) / n, 4) if n else 1.0,
            "mask_iou_min": round(min(ious), 5) if ious else None,
            "mask_iou_mean": round(float(np.mean(ious)), 5) if ious else None,
            "bbox_equal": boxes_equal}
