"""Segment everything: automatic mask generation over any bundle, numpy only.

    from edge_sam_sdk import AutomaticMaskGenerator, load_bundle
    generator = AutomaticMaskGenerator(load_bundle("bundles/mobile_sam"))
    records = generator.generate(image)          # HxWx3 uint8 RGB -> list of dicts

Three ways to prompt the decoder (``sampling``):
  * ``"grid"`` -- segment-anything's ``SamAutomaticMaskGenerator``: a point grid per crop
    layer, 3 masks per point, filtered by predicted IoU and stability score, boxes near a crop
    edge dropped, box NMS within and across crops, optional small-region and hole removal;
  * ``"hierarchical"`` -- TinySAM's: a sparse grid (``points_per_side // 4`` per side) first,
    then the dense points around each sparse point (a 4x4 block at the dense stride) only
    where no first-pass mask is confident (logits > ``high_score_thresh``);
  * ``"boxes"`` -- MobileSAMv2's object-aware prompts: boxes passed to :meth:`generate`
    (e.g. from a detector), one mask per box, batched.

Post-processing (:mod:`.candidates`, :mod:`.upscale`): ``mode="exact"`` computes stability
scores and boxes on the exact full-size logits, a few masks at a time, and encodes only the
masks that survive box NMS (segment-anything's records); ``mode="fast"`` filters and runs
NMS on estimates from the low-res logits and upscales only the survivors. Settings that imply
absurd work are refused up front (:mod:`.settings`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import processing as P
from ..bundle import Bundle
from ..errors import InputError
from ..predictor import SamPredictor
from . import mask_ops as M
from . import settings as S
from .candidates import MODES, CropContext, MaskSet
from .upscale import MaskUpscaler

SAMPLINGS = ("grid", "hierarchical", "boxes")
OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


class AutomaticMaskGenerator:
    """Masks for a whole image, segment-anything's parameters and record format.

    Args:
        bundle_or_predictor: a :class:`Bundle` or a :class:`SamPredictor` (its image is
            replaced, then reset).
        points_per_side: grid points per side (``points_per_side**2`` prompts per crop);
            None when ``point_grids`` is given. Hierarchical: the dense side (``>= 4``).
        points_per_batch: prompts per decoder run.
        pred_iou_thresh, stability_score_thresh: keep masks with predicted IoU ``>`` and
            stability score ``>=`` these (0 turns a filter off). stability_score_offset:
            the logit shift of the stability score.
        box_nms_thresh: box IoU above which a mask is suppressed within a crop (1.0: none);
            crop_nms_thresh: across crops (masks from smaller crops preferred).
        crop_n_layers, crop_overlap_ratio, crop_n_points_downscale_factor: crop layers
            (layer ``i`` has ``(2**i)**2`` crops, each encoded separately).
        point_grids: explicit ``Nx2`` grids in ``[0, 1]``, one per crop layer.
        min_mask_region_area: if > 0, holes and islands smaller than this are removed, then
            box NMS runs again.
        output_mode: ``"binary_mask"`` (``HxW`` bool), ``"uncompressed_rle"`` or
            ``"coco_rle"`` (pycocotools' string format).
        sampling: ``"grid"``, ``"hierarchical"`` or ``"boxes"`` (module docstring).
        high_score_thresh: hierarchical: the logit above which a first-pass mask counts as
            covering a pixel (TinySAM: 8.5, for trained weights).
        progress: called with one-line progress messages.
        mode: ``"exact"`` (default) or ``"fast"`` (module docstring).
        memory_budget: bytes of candidates' low-res logits kept in memory per crop (about
            176 KB each); past it they spill to a temporary folder.

    After :meth:`generate`, ``stats`` holds ``decoder_prompts``, ``decoder_runs``,
    ``encoder_runs``, ``masks``, and times in ms: ``time_ms`` (all of :meth:`generate`),
    ``encoder_ms`` (preprocessing included), ``decoder_ms``, ``postprocess_ms`` (the rest), of
    which ``filter_ms`` (upscaled statistics and filters per batch), ``nms_ms`` and
    ``encode_ms`` (survivors upscaled again and run-length encoded); hierarchical adds
    ``sparse_prompts``, ``dense_prompts``.
    """

    def __init__(
        self,
        bundle_or_predictor: Bundle | SamPredictor,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        sampling: str = "grid",
        high_score_thresh: float = 8.5,
        progress: Callable[[str], None] | None = None,
        mode: str = "exact",
        memory_budget: int = 256 << 20,
    ) -> None:
        if sampling not in SAMPLINGS:
            raise InputError(f"unknown sampling {sampling!r}; choose one of {list(SAMPLINGS)}")
        if output_mode not in OUTPUT_MODES:
            raise InputError(f"unknown output_mode {output_mode!r}; choose one of {list(OUTPUT_MODES)}")
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
        if sampling != "boxes" and (points_per_side is None) == (point_grids is None):
            raise InputError("give exactly one of points_per_side or point_grids "
                             "(pass points_per_side=None with point_grids)")
        self.points_per_batch = S.as_int("points_per_batch", points_per_batch, 1, S.MAX_POINTS_PER_BATCH)
        self.crop_n_layers = S.as_int("crop_n_layers", crop_n_layers, 0)
        self.crop_n_points_downscale_factor = S.as_int("crop_n_points_downscale_factor",
                                                       crop_n_points_downscale_factor, 1)
        pps = None if points_per_side is None else S.as_int("points_per_side", points_per_side, 1)
        if sampling == "hierarchical" and (pps is None or pps < 4):
            raise InputError("sampling='hierarchical' needs points_per_side >= 4 (the dense grid; "
                             "the first pass uses points_per_side // 4)")
        if sampling == "boxes" and self.crop_n_layers:
            raise InputError("sampling='boxes' runs on the whole image: crop_n_layers must be 0")
        grids = None if point_grids is None else S.check_point_grids(point_grids, self.crop_n_layers)
        S.check_work(pps, self.crop_n_layers, self.crop_n_points_downscale_factor, grids, sampling)
        if grids is not None:
            self.point_grids = grids
        elif pps is not None:
            self.point_grids = M.build_all_layer_point_grids(pps, self.crop_n_layers,
                                                             self.crop_n_points_downscale_factor)
        else:
            self.point_grids = []
        self.pred_iou_thresh = S.as_float("pred_iou_thresh", pred_iou_thresh, 0.0)
        self.stability_score_thresh = S.as_float("stability_score_thresh", stability_score_thresh, 0.0, 1.0)
        self.stability_score_offset = S.as_float("stability_score_offset", stability_score_offset, 0.0)
        self.box_nms_thresh = S.as_float("box_nms_thresh", box_nms_thresh, 0.0, 1.0)
        self.crop_nms_thresh = S.as_float("crop_nms_thresh", crop_nms_thresh, 0.0, 1.0)
        self.crop_overlap_ratio = S.as_float("crop_overlap_ratio", crop_overlap_ratio, 0.0, 0.99)
        self.min_mask_region_area = S.as_int("min_mask_region_area", min_mask_region_area, 0)
        self.high_score_thresh = S.as_float("high_score_thresh", high_score_thresh)
        self.memory_budget = S.as_int("memory_budget", memory_budget, 0)
        self.predictor = (bundle_or_predictor if isinstance(bundle_or_predictor, SamPredictor)
                          else SamPredictor(bundle_or_predictor))
        self.points_per_side = pps
        self.output_mode = output_mode
        self.sampling = sampling
        self.mode = mode
        self.progress = progress
        self.stats: dict[str, Any] = {}
        self._upscalers: dict[tuple[int, int], MaskUpscaler] = {}

    # ---------------------------------------------------------------------------- public
    def generate(self, image: np.ndarray, boxes: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Records for ``image`` (``HxWx3`` uint8 RGB), in segment-anything's order and format:
        ``segmentation`` (per ``output_mode``), ``area`` (int), ``bbox`` (XYWH),
        ``predicted_iou``, ``point_coords`` (``[[x, y]]`` original pixels; boxes: the two
        corners), ``stability_score``, ``crop_box`` (XYWH); sampling="boxes" adds ``box``
        (XYXY). ``boxes``: ``Nx4`` XYXY pixels, only (and always) for sampling="boxes".
        """
        P.check_image(image)
        box_arr = self._check_boxes(boxes)
        t0 = time.perf_counter()
        self.stats = {"decoder_prompts": 0, "decoder_runs": 0, "encoder_runs": 0, "encoder_ms": 0.0,
                      "decoder_ms": 0.0, "filter_ms": 0.0, "nms_ms": 0.0, "encode_ms": 0.0}
        if self.sampling == "hierarchical":
            self.stats.update(sparse_prompts=0, dense_prompts=0)
        orig_h, orig_w = image.shape[:2]
        if box_arr is not None:
            data = self._process_boxes(image, box_arr)
        else:
            crop_boxes, layers = M.generate_crop_boxes((orig_h, orig_w), self.crop_n_layers,
                                                       self.crop_overlap_ratio)
            data = MaskSet()
            for i, (crop_box, layer) in enumerate(zip(crop_boxes, layers, strict=True)):
                self._say(f"crop {i + 1}/{len(crop_boxes)} (layer {layer}): {crop_box}")
                data.extend(self._process_crop(image, crop_box, layer))
            if len(crop_boxes) > 1 and len(data):
                with self._timed("nms_ms"):
                    scores = 1.0 / M.box_area(np.asarray(data.crop_boxes, dtype=np.float64))
                    data.select(M.nms(data.box_array(), scores, self.crop_nms_thresh))
        if self.min_mask_region_area > 0 and len(data):
            self._remove_small_regions(data, (orig_h, orig_w))
        records = self._records(data, (orig_h, orig_w))
        total = (time.perf_counter() - t0) * 1e3
        self.stats.update(masks=len(records), time_ms=total,
                          postprocess_ms=total - self.stats["encoder_ms"] - self.stats["decoder_ms"])
        self._say(f"{len(records)} masks from {self.stats['decoder_prompts']} prompts in "
                  f"{self.stats['decoder_runs']} decoder runs, {self.stats['time_ms'] / 1e3:.1f} s")
        return records

    # ---------------------------------------------------------------------------- stages
    @contextmanager
    def _timed(self, key: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stats[key] += (time.perf_counter() - t0) * 1e3

    def _say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def _check_boxes(self, boxes: Any) -> np.ndarray | None:
        if self.sampling != "boxes":
            if boxes is not None:
                raise InputError(f"boxes are prompts for sampling='boxes' (this generator uses "
                                 f"sampling={self.sampling!r})")
            return None
        if boxes is None:
            raise InputError("sampling='boxes' needs boxes: generate(image, boxes=Nx4 XYXY pixels)")
        try:
            arr = np.asarray(boxes, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("boxes must be numeric, shape Nx4 (XYXY pixels)") from None
        if arr.ndim == 1 and arr.size == 0:
            arr = arr.reshape(0, 4)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise InputError(f"boxes must have shape Nx4 (XYXY pixels), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise InputError("boxes contain NaN or infinite values")
        if np.any(arr[:, 2] < arr[:, 0]) or np.any(arr[:, 3] < arr[:, 1]):
            raise InputError("boxes must be XYXY with x1 >= x0 and y1 >= y0")
        return arr

    def _context(self, crop_box: list[int], orig_size: tuple[int, int]) -> CropContext:
        size = self.predictor.original_size
        if size not in self._upscalers:  # one per crop size: its operators and groups
            spec = self.predictor.spec
            self._upscalers = {size: MaskUpscaler(spec.low_res_size, size, spec)}
        return CropContext(crop_box, orig_size, self._upscalers[size], self.pred_iou_thresh,
                           self.stability_score_thresh, self.stability_score_offset,
                           self.predictor.spec.mask_threshold, self.mode, self.memory_budget)

    def _finish_crop(self, ctx: CropContext, data: MaskSet) -> MaskSet:
        """Box NMS within the crop, then the survivors' RLE; the predictor's image is reset."""
        try:
            with self._timed("nms_ms"):
                if len(data):
                    scores = np.asarray(data.iou, np.float32)
                    data.select(M.nms(data.box_array(), scores, self.box_nms_thresh))
            with self._timed("encode_ms"):
                ctx.encode_survivors(data)
        finally:
            ctx.store.close()
            self.predictor.reset_image()
        return data

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int) -> MaskSet:
        x0, y0, x1, y1 = crop_box
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        self._set_image(crop)
        ctx = self._context(crop_box, image.shape[:2])
        h, w = crop.shape[:2]
        scale = np.array([[w, h]], dtype=np.float64)
        try:
            if self.sampling == "grid":
                data = self._run_points(ctx, self.point_grids[layer] * scale)
            else:
                assert self.points_per_side is not None
                side = max(1, int(self.points_per_side / self.crop_n_points_downscale_factor ** layer))
                sparse = M.build_point_grid(max(1, side // 4)) * scale
                cand = M.hierarchical_candidates(sparse, (h, w), side)
                covered = np.zeros(len(cand), dtype=bool)
                data = self._run_points(ctx, sparse, cand.astype(np.int64), covered)
                dense = cand[~covered]
                share = covered.mean() if len(cand) else 0.0
                self._say(f"  hierarchical: {len(sparse)} sparse points covered {share:.0%} of the dense "
                          f"candidates; {len(dense)} dense points left")
                data.extend(self._run_points(ctx, dense))
                self.stats["sparse_prompts"] += len(sparse)
                self.stats["dense_prompts"] += len(dense)
        except BaseException:
            ctx.store.close()
            self.predictor.reset_image()
            raise
        return self._finish_crop(ctx, data)

    def _run_points(self, ctx: CropContext, points: np.ndarray, coverage_points: np.ndarray | None = None,
                    covered: np.ndarray | None = None) -> MaskSet:
        data = MaskSet()
        n = len(points)
        n_batches = -(-n // self.points_per_batch)
        for b, start in enumerate(range(0, n, self.points_per_batch)):
            pts = points[start:start + self.points_per_batch]
            low, iou = self._decode(points=pts)
            self._say(f"  batch {b + 1}/{n_batches}: {len(pts)} points")
            with self._timed("filter_ms"):
                part, cov = ctx.process_batch(low, iou, pts[:, None, :], coverage_points,
                                              self.high_score_thresh)
            if covered is not None and cov is not None:
                covered |= cov
            data.extend(part)
        return data

    def _process_boxes(self, image: np.ndarray, boxes: np.ndarray) -> MaskSet:
        if not len(boxes):
            return MaskSet()
        self._set_image(image)
        h, w = image.shape[:2]
        ctx = self._context([0, 0, w, h], (h, w))
        data = MaskSet()
        try:
            for start in range(0, len(boxes), self.points_per_batch):
                chunk = boxes[start:start + self.points_per_batch]
                low, iou = self._decode(boxes=chunk)
                self._say(f"  boxes {start + 1}-{start + len(chunk)} of {len(boxes)}")
                with self._timed("filter_ms"):
                    data.extend(ctx.process_batch(low, iou, chunk.reshape(-1, 2, 2))[0])
        except BaseException:
            ctx.store.close()
            self.predictor.reset_image()
            raise
        return self._finish_crop(ctx, data)

    def _set_image(self, image: np.ndarray) -> None:
        t0 = time.perf_counter()
        self.predictor.set_image(image)
        self.stats["encoder_runs"] += 1
        self.stats["encoder_ms"] += (time.perf_counter() - t0) * 1e3

    def _decode(self, points: np.ndarray | None = None,
                boxes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One decoder run on the predictor's image: points ``Bx2`` (one foreground click
        each, multimask tokens) or boxes ``Bx4`` (single-mask token), pixels of that image.
        Returns low-res logits ``BxCxLxL`` and scores ``BxC`` (the predictor's ``predict_batch``
        without upscaling the whole batch at once)."""
        pred = self.predictor
        if points is not None:
            batch = len(points)
            low, iou = pred.predict_low_res(points[:, None, :], np.ones((batch, 1)), multimask_output=True)
        else:
            assert boxes is not None
            batch = len(boxes)
            low, iou = pred.predict_low_res(boxes=boxes, multimask_output=False)
        self.stats["decoder_ms"] += pred.timings["decoder_ms"]
        self.stats["decoder_runs"] += 1
        self.stats["decoder_prompts"] += batch
        return low, iou

    def _remove_small_regions(self, data: MaskSet, size: tuple[int, int]) -> None:
        """Fill small holes, drop small islands, then box NMS preferring unchanged masks
        (segment-anything's ``postprocess_small_regions``); one mask decoded at a time."""
        scores, new_rles, new_boxes = [], list(data.rles), list(data.boxes)
        for i, counts in enumerate(data.rles):
            mask = M.rle_to_mask({"size": list(size), "counts": counts})
            mask, holes = M.remove_small_regions(mask, self.min_mask_region_area, "holes")
            mask, islands = M.remove_small_regions(mask, self.min_mask_region_area, "islands")
            changed = holes or islands
            scores.append(0.0 if changed else 1.0)
            if changed:
                new_rles[i] = M.rle_counts(mask)
                new_boxes[i] = M.batched_mask_to_box(mask)
        data.rles, data.boxes = new_rles, new_boxes
        data.select(M.nms(data.box_array(), np.asarray(scores, np.float32),
                          max(self.box_nms_thresh, self.crop_nms_thresh)))

    def _records(self, data: MaskSet, size: tuple[int, int]) -> list[dict[str, Any]]:
        records = []
        h, w = size
        for i, counts in enumerate(data.rles):
            rle = {"size": [h, w], "counts": counts}
            seg: Any
            if self.output_mode == "binary_mask":
                seg = M.rle_to_mask(rle)
            elif self.output_mode == "coco_rle":
                seg = M.coco_encode_rle(rle)
            else:
                seg = {"size": [h, w], "counts": counts.tolist()}
            rec: dict[str, Any] = {
                "segmentation": seg,
                "area": int(counts[1::2].sum()),
                "bbox": M.box_xyxy_to_xywh(data.boxes[i]).tolist(),
                "predicted_iou": data.iou[i],
                "point_coords": data.points[i].tolist(),
                "stability_score": data.stability[i],
                "crop_box": M.box_xyxy_to_xywh(np.asarray(data.crop_boxes[i])).tolist(),
            }
            if self.sampling == "boxes":
                rec["box"] = data.points[i].reshape(4).tolist()
            records.append(rec)
        return records

