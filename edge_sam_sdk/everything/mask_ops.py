"""Mask utilities for automatic mask generation, in numpy only (no torch, torchvision, cv2).

Conventions (as segment-anything's ``utils/amg.py``):
  * masks are boolean ``HxW`` (or ``CxHxW``) arrays;
  * boxes are ``Nx4`` XYXY in pixels; a mask's box holds the first and last true column and
    row (inclusive), ``[0, 0, 0, 0]`` for an empty mask; records use XYWH (``x1 - x0``);
  * uncompressed RLE is ``{"size": [h, w], "counts": [...]}``: run lengths over the mask in
    column-major (Fortran) order, starting with a run of zeros (possibly 0);
  * COCO RLE is pycocotools' compressed form of the same runs, ``counts`` a string.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import numpy as np

# ------------------------------------------------------------------------ grids and crops


def build_point_grid(n_per_side: int) -> np.ndarray:
    """``n*n x 2`` points ``(x, y)`` evenly spaced in ``[0, 1]``, cell centres, row by row."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer; layer ``i`` has ``int(n_per_side / scale_per_layer**i)`` per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer ** i))) for i in range(n_layers + 1)]


def generate_crop_boxes(im_size: tuple[int, int], n_layers: int,
                        overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (XYXY ints) and their layer: the whole image (layer 0), then ``(2**i)**2``
    overlapping crops for layer ``i`` (overlap ``overlap_ratio`` of the short side in layer
    1, scaled down by ``2 / n_crops_per_side`` after), ordered x-major as segment-anything."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes, layers = [[0, 0, im_w, im_h]], [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for i_layer in range(n_layers):
        n_crops = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_crops))
        crop_w, crop_h = crop_len(im_w, n_crops, overlap), crop_len(im_h, n_crops, overlap)
        x0s = [int((crop_w - overlap) * i) for i in range(n_crops)]
        y0s = [int((crop_h - overlap) * i) for i in range(n_crops)]
        for x0, y0 in product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(i_layer + 1)
    return boxes, layers


def hierarchical_candidates(sparse: np.ndarray, size: tuple[int, int], dense_per_side: int) -> np.ndarray:
    """TinySAM's second-pass candidates: around each sparse point ``(x, y)`` (pixels), the 4x4
    block of dense-grid offsets ``{-1, 0, 1, 2} x stride`` (stride ``size // dense_per_side``,
    at least 1, per axis) less the point itself, kept where inside the ``size`` ``(h, w)``
    image. Returns ``Mx2`` float64 pixels."""
    h, w = int(size[0]), int(size[1])
    stride = np.array([max(1, w // dense_per_side), max(1, h // dense_per_side)], dtype=np.float64)
    steps = (-1, 0, 1, 2)
    offsets = np.array([(dx, dy) for dy in steps for dx in steps if (dx, dy) != (0, 0)], np.float64)
    cand = (sparse[:, None, :] + offsets[None] * stride).reshape(-1, 2)
    inside = np.all((cand >= 0) & (cand < np.array([w, h])), axis=1)
    return cand[inside]


def hierarchical_points(sparse: np.ndarray, coverage: np.ndarray, dense_per_side: int) -> np.ndarray:
    """:func:`hierarchical_candidates` not covered by ``coverage`` (``HxW`` bool, first-pass
    confident masks) at their integer pixel. Returns ``Mx2``."""
    cand = hierarchical_candidates(sparse, coverage.shape, dense_per_side)
    xi, yi = cand[:, 0].astype(np.int64), cand[:, 1].astype(np.int64)
    return cand[~coverage[yi, xi]]


# ---------------------------------------------------------------------------------- boxes


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas ``N`` of ``Nx4`` XYXY boxes (``(x1 - x0) * (y1 - y0)``, as torchvision)."""
    b = np.asarray(boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``NxM`` of XYXY boxes ``a`` (``Nx4``) and ``b`` (``Mx4``), float32
    arithmetic as torchvision's kernel (0/0 gives NaN, which never exceeds a threshold)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    xx0 = np.maximum(a[:, None, 0], b[None, :, 0])
    yy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    xx1 = np.minimum(a[:, None, 2], b[None, :, 2])
    yy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(xx1 - xx0, np.float32(0)) * np.maximum(yy1 - yy0, np.float32(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray | None,
                iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression per category (torchvision's ``batched_nms``).

    Boxes ``Nx4`` XYXY, scores ``N``, ``idxs`` ``N`` category ids (None: one category). Boxes
    are visited by score, descending, ties in input order (stable); a box is dropped when its
    IoU with a kept box of its category is ``> iou_threshold``. Returns kept indices ``K``
    (int64) in that visiting order.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    n = boxes.shape[0]
    cats = np.zeros(n, np.int64) if idxs is None else np.asarray(idxs).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        iou = box_iou(boxes[i:i + 1], boxes)[0]
        suppressed |= (iou > iou_threshold) & (cats == cats[i])
    return np.asarray(keep, dtype=np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """:func:`batched_nms` with a single category."""
    return batched_nms(boxes, scores, None, iou_threshold)


def batched_mask_to_box(masks: np.ndarray) -> np.ndarray:
    """XYXY boxes ``(..., 4)`` int64 around boolean masks ``(..., H, W)`` (inclusive last
    row/column; ``[0, 0, 0, 0]`` for an empty mask)."""
    arr = np.asarray(masks, dtype=bool)
    shape = arr.shape[:-2]
    flat: np.ndarray = arr.reshape((-1,) + arr.shape[-2:])
    out = np.zeros((flat.shape[0], 4), dtype=np.int64)
    rows: np.ndarray = np.any(flat, axis=2)
    cols: np.ndarray = np.any(flat, axis=1)
    nonempty = np.any(rows, axis=1)
    h, w = flat.shape[-2:]
    out[:, 0] = np.argmax(cols, axis=1)
    out[:, 1] = np.argmax(rows, axis=1)
    out[:, 2] = w - 1 - np.argmax(cols[:, ::-1], axis=1)
    out[:, 3] = h - 1 - np.argmax(rows[:, ::-1], axis=1)
    out[~nonempty] = 0
    return out.reshape(shape + (4,))


def box_xyxy_to_xywh(box: np.ndarray) -> np.ndarray:
    box = np.array(box, copy=True)
    box[..., 2] -= box[..., 0]
    box[..., 3] -= box[..., 1]
    return box


def is_box_near_crop_edge(boxes: np.ndarray, crop_box: list[int], orig_box: list[int],
                          atol: float = 20.0) -> np.ndarray:
    """``N`` flags: an edge of a box (XYXY, original-image frame) lies within ``atol`` px of
    the crop's edge while not within ``atol`` of the image's edge."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    near_crop = np.abs(b - np.asarray(crop_box, np.float32)[None]) <= atol
    near_image = np.abs(b - np.asarray(orig_box, np.float32)[None]) <= atol
    return np.any(near_crop & ~near_image, axis=1)


# ---------------------------------------------------------------------------- scores


def stability_score(logits: np.ndarray, mask_threshold: float, offset: float) -> np.ndarray:
    """Segment-anything's stability score per mask of ``logits`` (``(..., H, W)``):
    ``#(logits > t + offset) / #(logits > t - offset)`` -- the IoU of the two thresholded
    masks, one inside the other. 0.0 where the lower-threshold mask is empty."""
    logits = np.asarray(logits)
    inter = (logits > mask_threshold + offset).sum(axis=(-2, -1), dtype=np.int64)
    union = (logits > mask_threshold - offset).sum(axis=(-2, -1), dtype=np.int64)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)


# ------------------------------------------------------------------------------------ RLE


def rle_counts(mask: np.ndarray) -> np.ndarray:
    """Uncompressed RLE counts (int64) of a boolean ``HxW`` mask, column-major, zeros first."""
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    if flat.size == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds)
    return np.concatenate([[0], counts]) if flat[0] else counts


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """``{"size": [h, w], "counts": [...]}`` (segment-anything's uncompressed RLE)."""
    h, w = np.asarray(mask).shape
    return {"size": [int(h), int(w)], "counts": rle_counts(mask).tolist()}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Boolean ``HxW`` mask of an uncompressed or COCO (string ``counts``) RLE."""
    h, w = (int(s) for s in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if int(counts.sum()) != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h * w} for size {[h, w]}")
    values = (np.arange(counts.size) % 2).astype(bool)
    return np.ascontiguousarray(np.repeat(values, counts).reshape(w, h).T)


def rle_area(rle: dict[str, Any]) -> int:
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    return int(np.asarray(counts, dtype=np.int64)[1::2].sum())


def counts_to_string(counts: Any) -> str:
    """pycocotools' compressed RLE string (``rleToString``): each count, less the count two
    before it from the fourth on, in 5-bit groups, low first, ``0x20`` = more follow,
    ``0x10`` of the last group = sign, each group + 48 as one ASCII character."""
    cnts = [int(c) for c in counts]
    out: list[str] = []
    for i, c in enumerate(cnts):
        x = c - cnts[i - 2] if i > 2 else c
        more = True
        while more:
            g = x & 0x1F
            x >>= 5
            more = (x != -1) if (g & 0x10) else (x != 0)
            if more:
                g |= 0x20
            out.append(chr(g + 48))
    return "".join(out)


def string_to_counts(s: str | bytes) -> list[int]:
    """Inverse of :func:`counts_to_string` (pycocotools' ``rleFrString``)."""
    data = s.encode("ascii") if isinstance(s, str) else bytes(s)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            g = data[p] - 48
            x |= (g & 0x1F) << (5 * k)
            more = bool(g & 0x20)
            p += 1
            k += 1
            if not more and (g & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def coco_encode_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Uncompressed RLE -> ``{"size": [h, w], "counts": str}`` as pycocotools'
    ``frPyObjects`` + ``counts.decode()`` (JSON-ready)."""
    return {"size": [int(s) for s in rle["size"]], "counts": counts_to_string(rle["counts"])}


def coco_decode_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """COCO RLE -> uncompressed RLE."""
    return {"size": [int(s) for s in rle["size"]], "counts": string_to_counts(rle["counts"])}


# ------------------------------------------------------------------ connected components


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of true pixels: ``(row, start, end)`` (end exclusive), raster order."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rows, starts = np.nonzero(d == 1)
    _, ends = np.nonzero(d == -1)
    return rows, starts, ends


def _run_components(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int,
                    connectivity: int) -> np.ndarray:
    """Component id (0..K-1, numbered in raster order of first pixel) of every run."""
    n = rows.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = width + 2
    start_key, end_key = rows * k + starts, rows * k + ends
    below = (rows + 1) * k
    if connectivity == 8:  # touching diagonally counts: s_j <= e_i and e_j >= s_i
        lo = np.searchsorted(end_key, below + starts, side="left")
        hi = np.searchsorted(start_key, below + ends, side="right")
    else:  # 4: s_j < e_i and e_j > s_i
        lo = np.searchsorted(end_key, below + starts, side="right")
        hi = np.searchsorted(start_key, below + ends, side="left")
    span = np.maximum(hi - lo, 0)
    u = np.repeat(np.arange(n), span)
    first = np.repeat(np.cumsum(span) - span, span)
    v = np.repeat(lo, span) + (np.arange(u.size) - first)
    parent = np.arange(n)
    while u.size:  # union-find: hook larger roots under smaller, then compress fully
        pu, pv = parent[u], parent[v]
        differ = pu != pv
        if not differ.any():
            break
        u, v, pu, pv = u[differ], v[differ], pu[differ], pv[differ]
        low = np.minimum(pu, pv)
        np.minimum.at(parent, pu, low)
        np.minimum.at(parent, pv, low)
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots, comp = np.unique(parent, return_inverse=True)
    return comp.reshape(-1)


def label_regions(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a boolean ``HxW`` mask.

    Returns ``(labels HxW int32, sizes K int64)``: label 0 is the background (false pixels),
    components are 1..K numbered in raster order of their first pixel (as OpenCV's
    ``connectedComponents``); ``sizes[i]`` is the pixel count of label ``i + 1``.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    rows, starts, ends = _runs(mask)
    comp = _run_components(rows, starts, ends, w, connectivity)
    sizes = np.bincount(comp, weights=ends - starts).astype(np.int64) if comp.size else np.zeros(0, np.int64)
    labels = _paint(rows, starts, ends, comp + 1, (h, w))
    return labels, sizes


def _paint(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, values: np.ndarray,
           shape: tuple[int, int]) -> np.ndarray:
    """An ``HxW`` int32 image holding ``values[i]`` on run ``i``, 0 elsewhere."""
    h, w = shape
    n = h * w
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, rows * w + starts, values)
    np.add.at(delta, rows * w + ends, -values)
    return np.cumsum(delta[:n]).astype(np.int32).reshape(h, w)


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than
    ``area_thresh`` pixels, 8-connectivity, as segment-anything (if every island is small,
    the largest is kept). Returns ``(mask, changed)``."""
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    mask = np.asarray(mask, dtype=bool)
    holes = mode == "holes"
    working = ~mask if holes else mask
    h, w = mask.shape
    rows, starts, ends = _runs(working)
    comp = _run_components(rows, starts, ends, w, 8)
    if comp.size == 0:
        return mask, False
    sizes = np.bincount(comp, weights=ends - starts)
    small = sizes < area_thresh
    if not small.any():
        return mask, False
    if holes:
        return mask | _paint_runs(rows, starts, ends, small[comp], (h, w)), True
    keep = ~small
    if not keep.any():
        keep[int(np.argmax(sizes))] = True
    return _paint_runs(rows, starts, ends, keep[comp], (h, w)), True


def _paint_runs(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, chosen: np.ndarray,
                shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``HxW`` mask true on the ``chosen`` runs."""
    ones = np.ones(int(chosen.sum()), dtype=np.int64)
    return _paint(rows[chosen], starts[chosen], ends[chosen], ones, shape) > 0
