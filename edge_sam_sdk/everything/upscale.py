"""Full-size mask statistics from low-res logits, a few masks at a time, in numpy.

The generator needs, per candidate mask, what segment-anything computes on the logits
upscaled to the crop (``HxW``): pixel counts above ``t +- offset`` (stability score), the box
of ``logits > t``, the logits at a few points (hierarchical coverage) and, for masks that
survive NMS, the boolean mask itself. :class:`MaskUpscaler` computes them exactly from the
``L x L`` low-res logits with the separable banded operator of
:func:`edge_sam_sdk.processing.postprocess_masks` (``ry @ low @ rx.T``; the same float32
weights, the column pass first on the image's share of the low-res map, then the row pass),
the column pass for ``CHUNK`` masks at a time, then the row pass one band of 64 output rows
of one mask at a time, reduced while it is in cache: counts (``count_nonzero``) and the
per-row/column maxima (the box). No full-size float mask is ever materialized. Results
equal the full computation's (a pixel within a float ulp of a
threshold may flip, as between any two summation orders).

Fast mode (:meth:`MaskUpscaler.low_res_stats`) estimates counts and boxes from the low-res
logits alone: each low-res pixel weighted by the output area it feeds, and the output pixels
whose largest tap lies inside the low-res mask's box.
"""

from __future__ import annotations

import numpy as np

from .. import processing as P
from .. import resize as R

CHUNK = 8  # masks whose column pass is held at once: 8 x r x W float32 (~10 MB at 1800x1200)


def _dense(blocks: list[R.Block], cols: int) -> np.ndarray:
    """The ``out x cols`` float32 matrix of :func:`resize.banded` blocks."""
    m = np.zeros((blocks[-1][1], cols), np.float32)
    for o0, o1, i0, i1, w in blocks:
        m[o0:o1, i0:i1] = w
    return m


def _taps(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output: the input indices and weights of its non-zero taps (``out x K``, weight 0
    pads)."""
    nz = m != 0
    k = max(1, int(nz.sum(axis=1).max()))
    lo = nz.argmax(axis=1)
    idx = np.minimum(lo[:, None] + np.arange(k)[None], m.shape[1] - 1)
    w = np.take_along_axis(m, idx, axis=1)
    w = np.where(np.arange(k)[None] < nz.sum(axis=1)[:, None], w, 0.0).astype(np.float32)
    return idx, w


class MaskUpscaler:
    """Exact statistics of low-res logits (``N x L x L`` float32) upscaled to ``size``
    ``(h, w)`` per ``spec``."""

    def __init__(self, low_size: int, size: tuple[int, int], spec: P.ProcessingSpec) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.low_size = int(low_size)
        self.spec = spec
        ry_blocks, rx_blocks = P._mask_operators(self.low_size, self.size, spec)
        ry, rx = _dense(ry_blocks, self.low_size), _dense(rx_blocks, self.low_size)
        used_r, used_c = np.flatnonzero(ry.any(axis=0)), np.flatnonzero(rx.any(axis=0))
        self.low_rows = int(used_r[-1]) + 1 if used_r.size else 1  # low-res rows ever read
        self.low_cols = int(used_c[-1]) + 1 if used_c.size else 1
        self.ry = R.banded(ry[:, :self.low_rows].astype(np.float64))
        self.rx = R.banded(rx[:, :self.low_cols].astype(np.float64))
        self._row_dominant, self._col_dominant = ry.argmax(axis=1), rx.argmax(axis=1)
        self._row_taps = _taps(ry[:, :self.low_rows])
        self._col_taps = _taps(rx[:, :self.low_cols])
        self._row_weight = ry[:, :self.low_rows].sum(axis=0, dtype=np.float64).astype(np.float32)
        self._col_weight = rx[:, :self.low_cols].sum(axis=0, dtype=np.float64).astype(np.float32)

    def crop_valid(self, low: np.ndarray) -> np.ndarray:
        """The part of ``N x L x L`` logits the operator reads (``N x low_rows x low_cols``)."""
        return np.ascontiguousarray(np.asarray(low, np.float32)[..., :self.low_rows, :self.low_cols])

    def logits(self, valid: np.ndarray) -> np.ndarray:
        """Full-size logits ``N x H x W`` of :meth:`crop_valid` logits (keep ``N`` small)."""
        return R.apply_banded(R.apply_banded(valid, self.rx, -1), self.ry, -2)

    def stats(self, valid: np.ndarray, thresholds: list[float], mask_threshold: float,
              with_masks: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Exact statistics of :meth:`crop_valid` logits ``N x r x c``.

        Returns ``counts`` ``N x T`` int64 (pixels with logits ``> thresholds[t]``), ``boxes``
        ``N x 4`` XYXY int64 of ``logits > mask_threshold`` (``[0, 0, 0, 0]`` when empty,
        inclusive last row/column) and, ``with_masks``, those masks (``N x H x W`` bool; keep
        ``N`` small), else None.
        """
        n = valid.shape[0]
        h, w = self.size
        counts = np.zeros((n, len(thresholds)), np.int64)
        row_max = np.empty((n, h), np.float32)
        col_max = np.full((n, w), -np.inf, np.float32)
        masks = np.empty((n, h, w), dtype=bool) if with_masks else None
        with R._one_blas_thread():
            for s in range(0, n, CHUNK):
                cols = R.apply_banded(valid[s:s + CHUNK], self.rx, -1)  # n x r x W
                for k in range(cols.shape[0]):
                    m = s + k
                    # One band of output rows at a time (64 x W floats, cache-resident), the
                    # same products as the row pass of apply_banded.
                    for o0, o1, i0, i1, wt in self.ry:
                        band = wt @ cols[k, i0:i1]
                        for ti, t in enumerate(thresholds):
                            counts[m, ti] += np.count_nonzero(band > t)
                        band.max(axis=1, out=row_max[m, o0:o1])
                        np.maximum(col_max[m], band.max(axis=0), out=col_max[m])
                        if masks is not None:
                            np.greater(band, mask_threshold, out=masks[m, o0:o1])
        rows, cols_any = row_max > mask_threshold, col_max > mask_threshold
        boxes = np.stack([np.argmax(cols_any, axis=1), np.argmax(rows, axis=1),
                          w - 1 - np.argmax(cols_any[:, ::-1], axis=1),
                          h - 1 - np.argmax(rows[:, ::-1], axis=1)], axis=1).astype(np.int64)
        boxes[~rows.any(axis=1)] = 0
        return counts, boxes, masks

    def values_at(self, valid: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Upscaled logits ``N x P`` float32 at ``points`` (``P x 2`` integer ``(x, y)`` pixels
        inside the crop), from the taps alone (no full-size map)."""
        pts = np.asarray(points, np.int64).reshape(-1, 2)
        ri, rw = self._row_taps[0][pts[:, 1]], self._row_taps[1][pts[:, 1]]  # P x Kr
        ci, cw = self._col_taps[0][pts[:, 0]], self._col_taps[1][pts[:, 0]]  # P x Kc
        out = np.zeros((valid.shape[0], len(pts)), np.float32)
        for a in range(ri.shape[1]):
            for b in range(ci.shape[1]):
                out += valid[:, ri[:, a], ci[:, b]] * (rw[:, a] * cw[:, b])[None]
        return out

    def low_res_stats(self, valid: np.ndarray, thresholds: list[float],
                      mask_threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Fast mode's estimates from :meth:`crop_valid` logits alone: ``counts`` ``N x T``
        float64 (each low-res pixel above a threshold weighted by the output area it feeds)
        and ``boxes`` ``N x 4`` XYXY int64 (the output pixels whose largest upscaling tap lies
        within the low-res mask's box)."""
        wy, wx = self._row_weight, self._col_weight
        counts = np.stack([np.einsum("nab,a,b->n", (valid > t).astype(np.float32), wy, wx)
                           for t in thresholds], axis=1).astype(np.float64)
        fg: np.ndarray = valid > mask_threshold
        rows = np.any(fg, axis=2)
        cols = np.any(fg, axis=1)
        full = rows.any(axis=1)
        lo_box = np.stack([np.argmax(cols, axis=1), np.argmax(rows, axis=1),
                           cols.shape[1] - 1 - np.argmax(cols[:, ::-1], axis=1),
                           rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1)], axis=1)
        h, w = self.size
        boxes = np.stack([np.searchsorted(self._col_dominant, lo_box[:, 0], side="left"),
                          np.searchsorted(self._row_dominant, lo_box[:, 1], side="left"),
                          np.searchsorted(self._col_dominant, lo_box[:, 2], side="right") - 1,
                          np.searchsorted(self._row_dominant, lo_box[:, 3], side="right") - 1], axis=1)
        boxes = np.clip(boxes, 0, np.array([w - 1, h - 1, w - 1, h - 1])).astype(np.int64)
        boxes[~full] = 0
        return counts, boxes
