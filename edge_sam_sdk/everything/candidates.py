"""Candidate masks of one crop: filtering a decoder run's masks, and keeping them compactly.

A crop's candidates keep their low-res logits (the operator's share, ``r x c`` float32, about
176 KB for a 3:2 image, in a :class:`LowResStore` that spills to a temporary folder past
``memory_budget`` bytes), their box, scores and prompt; only the masks that survive the
crop's box NMS are upscaled again and run-length encoded (:func:`encode_survivors`).

``mode="exact"``: stability score and box from the exact full-size logits
(:meth:`MaskUpscaler.stats`), as segment-anything. ``mode="fast"``: both estimated from the
low-res logits (:meth:`MaskUpscaler.low_res_stats`) for the filters and NMS; survivors get
their exact stability score and box, and are filtered again with them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import mask_ops as M
from .upscale import CHUNK, MaskUpscaler

MODES = ("exact", "fast")


class LowResStore:
    """Append-only store of ``r x c`` float32 arrays: in memory up to ``budget`` bytes, then
    in ``.npy`` files of a temporary folder read back memory-mapped; :meth:`close` removes it."""

    def __init__(self, budget: int = 256 << 20) -> None:
        self.budget = int(budget)
        self._parts: list[np.ndarray] = []
        self._starts: list[int] = []
        self._n = 0
        self._bytes = 0
        self._dir: Path | None = None

    def __len__(self) -> int:
        return self._n

    def add(self, arrays: np.ndarray) -> np.ndarray:
        """Store ``K x r x c``; returns their ``K`` indices."""
        arrays = np.ascontiguousarray(arrays, np.float32)
        if self._bytes + arrays.nbytes > self.budget and len(arrays):
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="edgesam_lowres_"))
            path = self._dir / f"{len(self._parts)}.npy"
            np.save(path, arrays)
            arrays = np.load(path, mmap_mode="r")
        else:
            self._bytes += arrays.nbytes
        self._parts.append(arrays)
        self._starts.append(self._n)
        self._n += len(arrays)
        return np.arange(self._n - len(arrays), self._n)

    def get(self, idx: np.ndarray) -> np.ndarray:
        """``len(idx) x r x c`` float32 copies."""
        idx = np.asarray(idx, np.int64)
        part = np.searchsorted(np.asarray(self._starts), idx, side="right") - 1
        return np.stack([np.asarray(self._parts[p][i - self._starts[p]])
                         for p, i in zip(part, idx, strict=True)])

    def close(self) -> None:
        self._parts.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class MaskSet:
    """Masks with their fields: ``rles`` (uncompressed RLE counts in the original frame, filled
    by :func:`encode_survivors`), ``refs`` (indices into the crop's :class:`LowResStore`),
    ``boxes`` (XYXY int64, original frame), ``iou``, ``stability``, ``points`` (``Px2`` prompt
    points in original pixels; a box: its 2 corners), ``crop_boxes`` (XYXY)."""

    def __init__(self) -> None:
        self.rles: list[np.ndarray] = []
        self.refs: list[int] = []
        self.boxes: list[np.ndarray] = []
        self.iou: list[float] = []
        self.stability: list[float] = []
        self.points: list[np.ndarray] = []
        self.crop_boxes: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.boxes)

    def extend(self, other: MaskSet) -> None:
        for name in vars(self):
            getattr(self, name).extend(getattr(other, name))

    def select(self, keep: np.ndarray) -> None:
        for name in vars(self):
            values = getattr(self, name)
            if values:
                setattr(self, name, [values[int(i)] for i in keep])

    def box_array(self) -> np.ndarray:
        return np.asarray(self.boxes, dtype=np.int64).reshape(-1, 4)


class CropContext:
    """What one crop's batches share: its box, the original size, the upscaler to the crop
    size, the candidates' store and the filter settings."""

    def __init__(self, crop_box: list[int], orig_size: tuple[int, int], upscaler: MaskUpscaler,
                 pred_iou_thresh: float, stability_score_thresh: float, stability_score_offset: float,
                 mask_threshold: float, mode: str, memory_budget: int) -> None:
        self.crop_box = list(crop_box)
        self.orig_size = (int(orig_size[0]), int(orig_size[1]))
        self.upscaler = upscaler
        self.store = LowResStore(memory_budget)
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.offset = stability_score_offset
        self.t = mask_threshold
        self.mode = mode
        x0, y0 = crop_box[0], crop_box[1]
        self.shift = np.array([x0, y0, x0, y0], dtype=np.int64)

    def _filters(self, stability: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        keep = np.ones(len(boxes), dtype=bool)
        if self.stability_score_thresh > 0.0:
            keep &= stability >= self.stability_score_thresh
        h, w = self.orig_size
        keep &= ~M.is_box_near_crop_edge(boxes, self.crop_box, [0, 0, w, h])
        return keep

    def stability(self, counts: np.ndarray) -> np.ndarray:
        """Segment-anything's score from counts above ``t + offset`` and ``t - offset``."""
        inter, union = counts[:, 1].astype(np.float64), counts[:, 0].astype(np.float64)
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)

    def process_batch(self, low: np.ndarray, iou: np.ndarray, prompts: np.ndarray,
                      coverage_points: np.ndarray | None = None,
                      high_score_thresh: float = 0.0) -> tuple[MaskSet, np.ndarray | None]:
        """Filter one decoder run's masks (``BxCxLxL`` logits, ``BxC`` scores, prompts ``BxPx2``
        in crop pixels) as segment-anything's ``_process_batch``, keeping the survivors in
        the store. With ``coverage_points`` (``Qx2`` crop pixels) also returns ``Q`` flags:
        some kept mask has upscaled logits ``> high_score_thresh`` there (TinySAM)."""
        n_tokens = low.shape[1]
        low = low.reshape((-1,) + low.shape[2:])
        iou = np.asarray(iou, dtype=np.float32).reshape(-1)
        prompts = np.repeat(prompts, n_tokens, axis=0)
        idx = np.arange(iou.size)
        if self.pred_iou_thresh > 0.0:
            idx = idx[iou > self.pred_iou_thresh]
        up = self.upscaler
        valid = up.crop_valid(low[idx])
        thresholds = [self.t - self.offset, self.t + self.offset]
        if self.mode == "exact":
            counts, boxes, _ = up.stats(valid, thresholds, self.t)
        else:
            counts, boxes = up.low_res_stats(valid, thresholds, self.t)
        stability = self.stability(counts)
        boxes = boxes + self.shift
        keep = self._filters(stability, boxes)
        covered: np.ndarray | None = None
        if coverage_points is not None:
            covered = np.zeros(len(coverage_points), dtype=bool)
            if keep.any() and len(coverage_points):
                above: np.ndarray = up.values_at(valid[keep], coverage_points) > high_score_thresh
                covered = np.any(above, axis=0)
        data = MaskSet()
        kept = np.flatnonzero(keep)
        refs = self.store.add(valid[kept])
        data.refs = refs.tolist()
        data.boxes = list(boxes[kept])
        data.iou = [float(v) for v in iou[idx[kept]]]
        data.stability = [float(v) for v in stability[kept]]
        data.points = [prompts[i] + self.shift[:2] for i in idx[kept]]
        data.crop_boxes = [list(self.crop_box) for _ in kept]
        return data, covered

    def encode_survivors(self, data: MaskSet) -> None:
        """Upscale the masks of ``data`` (after NMS) again and fill ``rles`` (original
        frame); fast mode also replaces their stability and box by the exact ones and drops
        those the filters then refuse. Closes the store."""
        h, w = self.orig_size
        x0, y0, x1, y1 = self.crop_box
        whole = [x0, y0, x1, y1] == [0, 0, w, h]
        up = self.upscaler
        thresholds = [self.t - self.offset, self.t + self.offset]
        keep = np.ones(len(data), dtype=bool)
        rles: list[np.ndarray] = []
        for s in range(0, len(data), CHUNK):
            valid = self.store.get(np.asarray(data.refs[s:s + CHUNK]))
            counts, boxes, masks = up.stats(valid, thresholds, self.t, with_masks=True)
            assert masks is not None
            if self.mode == "fast":
                stability = self.stability(counts)
                boxes = boxes + self.shift
                keep[s:s + len(valid)] = self._filters(stability, boxes)
                for k in range(len(valid)):
                    data.stability[s + k] = float(stability[k])
                    data.boxes[s + k] = boxes[k]
            for mask in masks:
                if whole:
                    rles.append(M.rle_counts(mask))
                else:
                    full = np.zeros((h, w), dtype=bool)
                    full[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] = mask
                    rles.append(M.rle_counts(full))
        data.rles = rles
        data.refs = []
        self.store.close()
        if not keep.all():
            data.select(np.flatnonzero(keep))
