"""Segment everything's post-processing: the chunked upscaler equals full-size upscaling, fast
mode against the golden records, the candidates' spill store, and settings refused with the
work they imply."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from conftest import GOLDEN_DIR, get_bundle
from edge_sam_sdk import AutomaticMaskGenerator, Bundle, InputError, load_bundle
from edge_sam_sdk import processing as P
from edge_sam_sdk.everything import mask_ops as M
from edge_sam_sdk.everything.agreement import compare
from edge_sam_sdk.everything.candidates import LowResStore
from edge_sam_sdk.everything.upscale import MaskUpscaler
from edge_sam_sdk.visualize import demo_image

FILTERS_OFF = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def bundle(onnx_bundles: dict) -> Bundle:
    return load_bundle(get_bundle(onnx_bundles, "mobile_sam"))


def _smooth_logits(n: int, seed: int = 0) -> np.ndarray:
    """``n x 256 x 256`` logits: blobs (smooth edges) plus noise (ragged edges)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.6), rng.uniform(0.05, 0.4)
        blob = 12.0 * (r - np.hypot(xx - cx, yy - cy)) / r
        out.append(blob + rng.normal(0, 0.8, (256, 256)))
    return np.asarray(out, np.float32)


@pytest.mark.parametrize("spec, size", [
    (P.ProcessingSpec(), (120, 180)),                                      # SAM: upscale, crop, resize
    (P.ProcessingSpec(), (97, 61)),                                        # portrait, odd sizes
    (P.ProcessingSpec(resize="longest_side_floor", postprocess="crop_low_res"), (100, 150)),  # NanoSAM
    (P.ProcessingSpec(resize="stretch", postprocess="resize", mask_interpolation="torch_bicubic"),
     (90, 140)),                                                           # EfficientSAM (negative taps)
])
def test_upscaler_equals_full_size(spec: P.ProcessingSpec, size: tuple[int, int]) -> None:
    low = _smooth_logits(11)
    up = MaskUpscaler(256, size, spec)
    valid = up.crop_valid(low)
    full = P.postprocess_masks(low, size, spec)
    thresholds = [-1.0, 1.0]
    counts, boxes, masks = up.stats(valid, thresholds, 0.0, with_masks=True)
    assert masks is not None
    ref_counts = np.stack([(full > t).sum(axis=(1, 2)) for t in thresholds], axis=1)
    # A pixel within a float ulp of a threshold may flip between summation orders.
    assert np.abs(counts - ref_counts).max() <= 2
    assert (masks != (full > 0)).sum() <= 2
    assert np.abs(boxes - M.batched_mask_to_box(full > 0)).max() <= 1
    pts = np.array([[0, 0], [size[1] - 1, size[0] - 1], [size[1] // 2, size[0] // 3]])
    np.testing.assert_allclose(up.values_at(valid, pts), full[:, pts[:, 1], pts[:, 0]], atol=2e-5)
    est, est_boxes = up.low_res_stats(valid, thresholds, 0.0)
    big = ref_counts > 0.02 * size[0] * size[1]
    error = np.abs(est / np.maximum(ref_counts, 1) - 1)[big]
    assert np.median(error) < 0.05 and error.max() < 0.5, error  # fast mode's estimates
    assert np.median(np.abs(est_boxes - boxes)) <= max(size) * 0.05


def test_empty_masks_and_chunking() -> None:
    up = MaskUpscaler(256, (40, 60), P.ProcessingSpec())
    low = np.full((20, 256, 256), -5.0, np.float32)  # 20 > CHUNK masks, all empty
    counts, boxes, _ = up.stats(up.crop_valid(low), [-1.0, 1.0], 0.0)
    assert counts.sum() == 0 and boxes.tolist() == [[0, 0, 0, 0]] * 20


def test_low_res_store_spills_and_cleans_up() -> None:
    data = _smooth_logits(5)[:, :40, :50]
    store = LowResStore(budget=data[:2].nbytes)
    assert store.add(data[:2]).tolist() == [0, 1]
    assert store.add(data[2:]).tolist() == [2, 3, 4]  # over budget: written to a temporary file
    spill = store._dir
    assert spill is not None and any(spill.iterdir())
    assert np.array_equal(store.get(np.array([4, 0, 2])), data[[4, 0, 2]])
    store.close()
    assert not spill.exists()


def test_memory_budget_does_not_change_records(bundle: Bundle) -> None:
    image = demo_image(120, 180)
    kw: dict[str, Any] = {"points_per_side": 3, "box_nms_thresh": 0.9, "output_mode": "uncompressed_rle",
                          **FILTERS_OFF}
    in_memory = AutomaticMaskGenerator(bundle, **kw).generate(image)
    spilled = AutomaticMaskGenerator(bundle, memory_budget=0, **kw).generate(image)
    assert in_memory == spilled and len(in_memory) > 0


@pytest.mark.parametrize("config", ["all", "crops"])
def test_fast_mode_against_golden(bundle: Bundle, truck: np.ndarray, config: str) -> None:
    z = np.load(GOLDEN_DIR / "amg_mobile_sam.npz")
    case = dict(json.loads(str(z["meta"]))["cases"][f"amg.{config}"])
    count = case.pop("count")
    gen = AutomaticMaskGenerator(bundle, mode="fast", **case)
    fast = gen.generate(truck)
    shape = tuple(int(s) for s in z[f"amg.{config}.segmentation.sub4.shape"])
    bits = np.unpackbits(z[f"amg.{config}.segmentation.sub4"])[: int(np.prod(shape))].reshape(shape)
    golden = [{"segmentation": bits[i].astype(bool), "point_coords": z[f"amg.{config}.point_coords"][i][None],
               "bbox": z[f"amg.{config}.bbox"][i].tolist()} for i in range(count)]
    ours = [dict(r, segmentation=r["segmentation"][::4, ::4]) for r in fast]
    agree = compare(golden, ours, min_iou=0.9)
    print(f"\nfast mode, amg.{config}: {agree}")
    assert agree["share_matched"] >= 0.95 and agree["mask_iou_min"] >= 0.98
    assert gen.stats["encode_ms"] >= 0.0 and gen.stats["filter_ms"] > 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"points_per_side": 3000}, "9,000,000 prompts per crop"),
    ({"crop_n_layers": 14}, "357,913,941 crops"),
    ({"points_per_side": 64, "crop_n_layers": 4}, "decoder prompts"),
    ({"points_per_side": float("nan")}, "points_per_side must be a whole number"),
    ({"points_per_side": -3}, "points_per_side must be >= 1"),
    ({"points_per_side": 2.5}, "whole number"),
    ({"pred_iou_thresh": float("nan")}, "pred_iou_thresh must be finite"),
    ({"stability_score_thresh": float("inf")}, "stability_score_thresh must be finite"),
    ({"box_nms_thresh": -0.1}, "box_nms_thresh must be in"),
    ({"stability_score_offset": -1.0}, "stability_score_offset must be in"),
    ({"crop_overlap_ratio": 1.5}, "crop_overlap_ratio"),
    ({"min_mask_region_area": -5}, "min_mask_region_area"),
    ({"points_per_batch": 10**6}, "points_per_batch must be in"),
    ({"points_per_batch": True}, "points_per_batch must be an integer"),
    ({"high_score_thresh": float("-inf")}, "high_score_thresh must be finite"),
    ({"mode": "quick"}, "unknown mode"),
    ({"points_per_side": None, "point_grids": [np.full((4, 2), np.nan)]}, "finite values in"),
    ({"points_per_side": None, "point_grids": [np.ones((4, 3))]}, "Nx2"),
])
def test_absurd_settings_refused(bundle: Bundle, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        AutomaticMaskGenerator(bundle, **kwargs)


def test_spec_variants_build() -> None:
    # Every postprocess rule gives an upscaler whose operator reads inside the low-res map.
    for spec in (P.ProcessingSpec(), replace(P.ProcessingSpec(), prompt_frame=1024, input_size=512)):
        up = MaskUpscaler(256, (300, 200), spec)
        assert 0 < up.low_rows <= 256 and 0 < up.low_cols <= 256
