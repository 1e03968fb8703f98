"""Segment everything: parity with the official SamAutomaticMaskGenerator (golden records on
truck.jpg), hierarchical and box sampling, and the numpy mask utilities on hand-made masks."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import GOLDEN_DIR, get_bundle
from edge_sam_sdk import AutomaticMaskGenerator, Bundle, InputError, SamPredictor, load_bundle
from edge_sam_sdk.cli import main
from edge_sam_sdk.everything import mask_ops as M
from edge_sam_sdk.visualize import demo_image, save_png

AMG_GOLDEN = GOLDEN_DIR / "amg_mobile_sam.npz"
FILTERS_OFF = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def bundle(onnx_bundles: dict) -> Bundle:
    return load_bundle(get_bundle(onnx_bundles, "mobile_sam"))


# ------------------------------------------------------------------------------ golden


def _golden_masks(z: Any, prefix: str) -> np.ndarray:
    shape = tuple(int(s) for s in z[f"{prefix}.segmentation.sub4.shape"])
    bits = np.unpackbits(z[f"{prefix}.segmentation.sub4"])[: int(np.prod(shape))]
    return bits.reshape(shape).astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.parametrize("config", ["all", "crops"])
def test_grid_matches_official_generator(bundle: Bundle, truck: np.ndarray, config: str) -> None:
    z = np.load(AMG_GOLDEN)
    case = dict(json.loads(str(z["meta"]))["cases"][f"amg.{config}"])
    count = case.pop("count")
    generator = AutomaticMaskGenerator(bundle, **case)
    records = generator.generate(truck)
    prefix = f"amg.{config}"
    ref_masks = _golden_masks(z, prefix)
    assert len(records) == count == len(ref_masks)
    assert generator.stats["decoder_prompts"] == 64 * (1 + case.get("crop_n_layers", 0))
    ours_points = np.array([r["point_coords"][0] for r in records])
    ours_sub4 = [r["segmentation"][::4, ::4] for r in records]
    used: set[int] = set()
    worst_iou, worst_score = 1.0, 0.0
    for i in range(count):
        same_point = [j for j in range(count) if j not in used
                      and np.allclose(ours_points[j], z[f"{prefix}.point_coords"][i], atol=1e-6)]
        assert same_point, f"official record {i}: no mask of ours from point {z[f'{prefix}.point_coords'][i]}"
        j = max(same_point, key=lambda k: _iou(ours_sub4[k], ref_masks[i]))
        used.add(j)
        rec = records[j]
        worst_iou = min(worst_iou, _iou(ours_sub4[j], ref_masks[i]))
        worst_score = max(worst_score, abs(rec["predicted_iou"] - float(z[f"{prefix}.predicted_iou"][i])))
        assert rec["bbox"] == z[f"{prefix}.bbox"][i].tolist()
        assert rec["crop_box"] == z[f"{prefix}.crop_box"][i].tolist()
        assert abs(rec["stability_score"] - float(z[f"{prefix}.stability_score"][i])) <= 0.01
        assert rec["area"] == int(rec["segmentation"].sum())
    print(f"\namg.{config}: {count} masks, worst mask IoU {worst_iou:.5f}, "
          f"worst predicted-IoU diff {worst_score:.2e}")
    assert worst_iou >= 0.98 and worst_score <= 0.01
    # Output order: box NMS (here suppressing nothing) sorts by predicted IoU, descending.
    scores = [r["predicted_iou"] for r in records]
    assert scores == sorted(scores, reverse=True)


# ----------------------------------------------------------------- sampling strategies


def test_hierarchical_needs_3x_fewer_prompts(bundle: Bundle, truck: np.ndarray) -> None:
    # Synthetic weights give logits within about +-3, so TinySAM's high_score_thresh (8.5, for
    # trained weights) would mark nothing as covered; the mask threshold (0) is used here.
    hier = AutomaticMaskGenerator(bundle, points_per_side=32, sampling="hierarchical",
                                  high_score_thresh=0.0, output_mode="uncompressed_rle", **FILTERS_OFF)
    records = hier.generate(truck)
    stats = hier.stats
    assert stats["sparse_prompts"] == 64 and stats["decoder_prompts"] == 64 + stats["dense_prompts"]
    assert len(records) >= 1 and set(records[0]) >= {"segmentation", "area", "bbox", "predicted_iou",
                                                      "point_coords", "stability_score", "crop_box"}

    # The grid's prompt count is points_per_side**2, whatever the masks: count it with a stub
    # decoder (scores 0, so the IoU filter drops every mask before upscaling).
    grid = AutomaticMaskGenerator(bundle, points_per_side=32, pred_iou_thresh=0.5)

    def stub(points: np.ndarray, boxes: None = None) -> tuple[np.ndarray, np.ndarray]:
        grid.stats["decoder_runs"] += 1
        grid.stats["decoder_prompts"] += len(points)
        return np.zeros((len(points), 3, 256, 256), np.float32), np.zeros((len(points), 3), np.float32)

    grid._decode = stub  # type: ignore[assignment]
    assert grid.generate(truck) == []
    assert grid.stats["decoder_prompts"] == 32 * 32 and grid.stats["decoder_runs"] == 16
    print(f"\nhierarchical: {stats['decoder_prompts']} prompts ({stats['decoder_runs']} runs), "
          f"{len(records)} masks, {stats['time_ms'] / 1e3:.1f} s; grid 32x32: 1024 prompts")
    assert 3 * stats["decoder_prompts"] <= grid.stats["decoder_prompts"]


def test_box_sampling_equals_predictor(bundle: Bundle) -> None:
    image = demo_image()
    boxes = np.array([[160, 230, 420, 450], [560, 150, 760, 470], [450, 470, 560, 570]], np.float64)
    gen = AutomaticMaskGenerator(bundle, sampling="boxes", box_nms_thresh=1.0, points_per_batch=2,
                                 output_mode="uncompressed_rle", **FILTERS_OFF)
    records = gen.generate(image, boxes=boxes)
    assert gen.stats["decoder_prompts"] == 3 and gen.stats["decoder_runs"] == 2
    assert len(records) == 3
    predictor = SamPredictor(bundle)
    predictor.set_image(image)
    for rec in records:
        box = np.array(rec["box"])
        assert any(np.array_equal(box, b) for b in boxes)
        assert np.array_equal(np.array(rec["point_coords"]), box.reshape(2, 2))
        masks, scores, _ = predictor.predict(box=box, multimask_output=False)
        assert abs(rec["predicted_iou"] - float(scores[0])) < 1e-4
        assert _iou(M.rle_to_mask(rec["segmentation"]), masks[0]) > 0.999
    assert gen.generate(image, boxes=np.zeros((0, 4))) == []


def test_output_modes_and_predictor_input(bundle: Bundle) -> None:
    image = demo_image(300, 450)
    kw: dict[str, Any] = {"points_per_side": 2, "box_nms_thresh": 1.0, **FILTERS_OFF}
    binary = AutomaticMaskGenerator(SamPredictor(bundle), **kw).generate(image)
    coco = AutomaticMaskGenerator(bundle, output_mode="coco_rle", **kw).generate(image)
    rle = AutomaticMaskGenerator(bundle, output_mode="uncompressed_rle", **kw).generate(image)
    assert len(binary) == len(coco) == len(rle) == 12
    for b, c, r in zip(binary, coco, rle, strict=True):
        assert isinstance(c["segmentation"]["counts"], str) and isinstance(r["segmentation"]["counts"], list)
        assert np.array_equal(M.rle_to_mask(c["segmentation"]), b["segmentation"])
        assert np.array_equal(M.rle_to_mask(r["segmentation"]), b["segmentation"])
        assert b["area"] == c["area"] == int(b["segmentation"].sum())
    json.dumps(coco)  # JSON-ready


def test_small_region_removal_in_generator(bundle: Bundle) -> None:
    image = demo_image(300, 450)
    gen = AutomaticMaskGenerator(bundle, points_per_side=2, min_mask_region_area=400, **FILTERS_OFF)
    for rec in gen.generate(image):
        mask = rec["segmentation"]
        for m in (mask, ~mask):
            _, sizes = M.label_regions(m)
            assert sizes.size == 0 or sizes.min() >= 400 or sizes.size == 1
        assert rec["bbox"] == M.box_xyxy_to_xywh(M.batched_mask_to_box(mask)).tolist()


@pytest.mark.parametrize("kwargs, message", [
    ({"sampling": "random"}, "unknown sampling"),
    ({"output_mode": "png"}, "unknown output_mode"),
    ({"point_grids": [M.build_point_grid(4)]}, "exactly one of points_per_side or point_grids"),
    ({"sampling": "hierarchical", "points_per_side": 2}, "points_per_side >= 4"),
    ({"sampling": "boxes", "crop_n_layers": 1}, "crop_n_layers must be 0"),
    ({"points_per_batch": 0}, "points_per_batch"),
])
def test_bad_arguments(bundle: Bundle, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        AutomaticMaskGenerator(bundle, **kwargs)


def test_bad_boxes(bundle: Bundle) -> None:
    image = demo_image(60, 90)
    with pytest.raises(InputError, match="needs boxes"):
        AutomaticMaskGenerator(bundle, sampling="boxes").generate(image)
    with pytest.raises(InputError, match="Nx4"):
        AutomaticMaskGenerator(bundle, sampling="boxes").generate(image, boxes=np.zeros((2, 3)))
    with pytest.raises(InputError, match="x1 >= x0"):
        AutomaticMaskGenerator(bundle, sampling="boxes").generate(image, boxes=[[10, 10, 5, 20]])
    with pytest.raises(InputError, match="sampling='boxes'"):
        AutomaticMaskGenerator(bundle, points_per_side=2).generate(image, boxes=[[0, 0, 5, 5]])
    with pytest.raises(InputError, match="HxWx3"):
        AutomaticMaskGenerator(bundle, points_per_side=2).generate(np.zeros((5, 5), np.uint8))


def test_cli_everything(bundle: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_png(demo_image(300, 450), tmp_path / "img.png")
    common = [str(bundle.path), "--image", str(tmp_path / "img.png"), "--pred-iou-thresh", "0",
              "--stability-score-thresh", "0"]
    assert main(["everything", *common, "--points-per-side", "4", "--out", str(tmp_path / "m.png"),
                 "--json", str(tmp_path / "m.json")]) == 0
    out, err = capsys.readouterr()
    assert "batch 1/1" in err and json.loads(out)["stats"]["decoder_prompts"] == 16
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["sampling"] == "grid" and doc["masks"] and (tmp_path / "m.png").stat().st_size > 0
    mask = M.rle_to_mask(doc["masks"][0]["segmentation"])
    assert mask.shape == (300, 450) and int(mask.sum()) == doc["masks"][0]["area"]

    (tmp_path / "boxes.json").write_text(json.dumps({"boxes": [[50, 60, 200, 220]]}))
    assert main(["everything", *common, "--sampling", "boxes", "--boxes", str(tmp_path / "boxes.json"),
                 "--box", "250,40,400,200", "--out", str(tmp_path / "b.png")]) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["decoder_prompts"] == 2
    assert main(["everything", *common, "--sampling", "boxes", "--out", str(tmp_path / "c.png")]) == 1
    assert "needs prompts" in capsys.readouterr().err


# ------------------------------------------------------------------------------- RLE


def _masks_for_rle() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [np.zeros((5, 7), bool), np.ones((5, 7), bool), np.ones((1, 1), bool), np.zeros((1, 1), bool)]
    out.append(rng.random((37, 53)) > 0.5)
    blob = np.zeros((120, 90), bool)
    blob[10:100, 5:80] = True
    blob[40:60, 30:50] = False
    out.append(blob)
    first = np.zeros((40, 2000), bool)
    first[0, 0] = True
    first[:, 1500:] = True  # runs longer than 2**10 and of every length class
    out.append(first)
    return out


def test_rle_round_trip() -> None:
    for mask in _masks_for_rle():
        rle = M.mask_to_rle(mask)
        assert rle["size"] == list(mask.shape) and sum(rle["counts"]) == mask.size
        assert np.array_equal(M.rle_to_mask(rle), mask)
        assert M.rle_area(rle) == int(mask.sum())
        coco = M.coco_encode_rle(rle)
        assert M.string_to_counts(coco["counts"]) == rle["counts"]
        assert np.array_equal(M.rle_to_mask(coco), mask) and M.rle_area(coco) == int(mask.sum())
        assert M.coco_decode_rle(coco) == rle
    hand = np.array([[0, 1], [1, 1], [0, 0]], bool)  # column-major: 0 1 0 | 1 1 0
    assert M.mask_to_rle(hand)["counts"] == [1, 1, 1, 2, 1]
    assert M.mask_to_rle(np.ones((2, 2), bool))["counts"] == [0, 4]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under numpy 2
def test_rle_matches_pycocotools() -> None:
    mask_utils = pytest.importorskip("pycocotools.mask", reason="pycocotools is not installed "
                                     "(pip install 'edgesam[dev]'); our RLE is checked against its format")
    for mask in _masks_for_rle():
        rle = M.mask_to_rle(mask)
        ref = mask_utils.frPyObjects(rle, *rle["size"])
        ours = M.coco_encode_rle(rle)
        assert ours["counts"] == ref["counts"].decode("utf-8") and ours["size"] == list(ref["size"])
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["counts"].encode() == encoded["counts"]
        back = {"size": ours["size"], "counts": ours["counts"].encode()}
        assert np.array_equal(mask_utils.decode(back).astype(bool), mask)
        assert int(mask_utils.area(back)) == M.rle_area(ours)


# ------------------------------------------------------------------------- NMS, boxes


def test_nms_hand_made() -> None:
    boxes = np.array([[0, 0, 10, 10],    # 0
                      [1, 1, 11, 11],    # 1: IoU with 0 = 81/119 = 0.68
                      [0, 0, 10, 9],     # 2: IoU with 0 = 0.9
                      [50, 50, 60, 60],  # 3: apart
                      [0, 0, 10, 10]])   # 4: copy of 0
    scores = np.array([0.9, 0.8, 0.95, 0.1, 0.9])
    assert M.nms(boxes, scores, 0.7).tolist() == [2, 1, 3]
    assert M.nms(boxes, scores, 0.6).tolist() == [2, 3]
    # Nothing exceeds IoU 1.0: all kept, by score, ties (0 and 4) in input order.
    assert M.nms(boxes, scores, 1.0).tolist() == [2, 0, 4, 1, 3]
    # Categories never suppress each other.
    assert M.batched_nms(boxes, scores, np.array([0, 0, 1, 0, 1]), 0.7).tolist() == [2, 0, 1, 3]
    # Zero-area boxes (IoU 0/0) are never suppressed; empty input gives nothing.
    assert M.nms(np.zeros((2, 4)), np.array([1.0, 0.5]), 0.5).tolist() == [0, 1]
    assert M.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    np.testing.assert_allclose(M.box_iou(boxes[:1], boxes[1:3])[0], [81 / 119, 0.9], rtol=1e-6)


def test_nms_equals_brute_force() -> None:
    rng = np.random.default_rng(1)
    xy = rng.integers(0, 50, (60, 2))
    boxes = np.concatenate([xy, xy + rng.integers(1, 30, (60, 2))], axis=1)
    scores = rng.integers(0, 10, 60).astype(np.float64)  # many ties
    keep, alive = [], list(np.argsort(-scores, kind="stable"))
    while alive:
        i = alive.pop(0)
        keep.append(int(i))
        alive = [j for j in alive if M.box_iou(boxes[[i]], boxes[[j]])[0, 0] <= 0.5]
    assert M.nms(boxes, scores, 0.5).tolist() == keep


def test_mask_to_box_and_crop_edge() -> None:
    masks = np.zeros((3, 6, 8), bool)
    masks[0, 2:4, 1:6] = True
    masks[1, 5, 7] = True
    assert M.batched_mask_to_box(masks).tolist() == [[1, 2, 5, 3], [7, 5, 7, 5], [0, 0, 0, 0]]
    assert M.batched_mask_to_box(masks[0]).tolist() == [1, 2, 5, 3]
    assert M.box_xyxy_to_xywh(np.array([1, 2, 5, 3])).tolist() == [1, 2, 4, 1]
    boxes = np.array([[100, 100, 200, 200], [0, 0, 490, 300], [300, 0, 530, 100], [0, 0, 1000, 1000]])
    near = M.is_box_near_crop_edge(boxes, [0, 0, 500, 500], [0, 0, 1000, 1000])
    assert near.tolist() == [False, True, False, False]


def test_crop_boxes_and_grids() -> None:
    boxes, layers = M.generate_crop_boxes((1200, 1800), 1, 512 / 1500)
    assert layers == [0, 1, 1, 1, 1] and boxes[0] == [0, 0, 1800, 1200]
    # overlap int(512 / 1500 * 1200) = 409; crops ceil((409 + 1800) / 2) x ceil((409 + 1200) / 2)
    assert boxes[1:] == [[0, 0, 1105, 805], [0, 396, 1105, 1200], [696, 0, 1800, 805], [696, 396, 1800, 1200]]
    assert M.generate_crop_boxes((1200, 1800), 0, 0.3) == ([[0, 0, 1800, 1200]], [0])
    grid = M.build_point_grid(4)
    assert grid.shape == (16, 2) and grid[0].tolist() == [0.125, 0.125] and grid[1].tolist() == [0.375, 0.125]
    assert [len(g) for g in M.build_all_layer_point_grids(8, 2, 2)] == [64, 16, 4]


def test_hierarchical_points() -> None:
    sparse = M.build_point_grid(2) * np.array([[400, 200]])  # (100, 50), (300, 50), ...
    free = np.zeros((200, 400), bool)
    dense = M.hierarchical_points(sparse, free, 8)  # stride (50, 25)
    assert len(dense) == 15 + 11 + 11 + 8  # the +2 column/row of the right/lower points falls outside
    assert [50.0, 25.0] in dense.tolist() and [200.0, 100.0] in dense.tolist()
    assert not any(p in sparse.tolist() for p in dense.tolist())
    assert len(M.hierarchical_points(sparse, ~free, 8)) == 0
    half = free.copy()
    half[:, :200] = True
    assert all(x >= 200 for x, _ in M.hierarchical_points(sparse, half, 8))


# ----------------------------------------------------------- stability, regions


def test_stability_score_hand_made() -> None:
    logits = np.full((3, 4, 4), -5.0, np.float32)
    logits[0, :2, :2] = 5.0       # 4 px above +1, none in between: 1.0
    logits[1, :2, :] = 0.5        # 8 px above -1, none above +1: 0.0
    logits[1, 0, 0] = 2.0         # 1 of 8: 0.125
    scores = M.stability_score(logits, 0.0, 1.0)
    np.testing.assert_allclose(scores, [1.0, 0.125, 0.0])
    np.testing.assert_allclose(M.stability_score(logits[1], 0.0, 0.25), 1.0)
    assert M.stability_score(logits, 0.0, 1.0).dtype == np.float32


def _bfs_labels(mask: np.ndarray, connectivity: int) -> list[int]:
    seen = np.zeros_like(mask)
    sizes = []
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        seen[y, x], queue, n = True, deque([(y, x)]), 0
        while queue:
            cy, cx = queue.popleft()
            n += 1
            for dy, dx in steps:
                ny, nx = cy + dy, cx + dx
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        sizes.append(n)
    return sizes  # in raster order of each component's first pixel


@pytest.mark.parametrize("connectivity", [4, 8])
def test_label_regions_equals_flood_fill(connectivity: int) -> None:
    rng = np.random.default_rng(connectivity)
    for density in (0.2, 0.45, 0.6):
        mask = rng.random((40, 57)) < density
        labels, sizes = M.label_regions(mask, connectivity)
        assert sizes.tolist() == _bfs_labels(mask, connectivity)
        assert np.array_equal(labels > 0, mask)
        assert np.array_equal(np.bincount(labels.ravel())[1:], sizes)
    diag = np.eye(5, dtype=bool)  # one region with 8-connectivity, five with 4
    assert M.label_regions(diag, connectivity)[1].size == (1 if connectivity == 8 else 5)


def test_remove_small_regions_hand_made() -> None:
    mask = np.zeros((20, 20), bool)
    mask[2:12, 2:12] = True      # 100 px square ...
    mask[5:7, 5:7] = False       # ... with a 4 px hole
    mask[15, 15] = mask[16, 16] = True  # a 2 px island (diagonal: one region with 8-connectivity)
    filled, changed = M.remove_small_regions(mask, 10, "holes")
    assert changed and filled[5:7, 5:7].all() and filled.sum() == mask.sum() + 4
    cleaned, changed = M.remove_small_regions(filled, 10, "islands")
    assert changed and not cleaned[15:, 15:].any() and cleaned.sum() == 100
    same, changed = M.remove_small_regions(cleaned, 10, "islands")
    assert not changed and np.array_equal(same, cleaned)
    # The background counts as a hole only when small: a 20x20 frame's outside is not filled.
    assert not M.remove_small_regions(cleaned, 10, "holes")[1]
    # Every island small: the largest is kept.
    tiny = np.zeros((10, 10), bool)
    tiny[0, 0] = True
    tiny[5:7, 5:7] = True
    kept, changed = M.remove_small_regions(tiny, 50, "islands")
    assert changed and kept.sum() == 4 and kept[5:7, 5:7].all()
    empty, changed = M.remove_small_regions(np.zeros((4, 4), bool), 5, "islands")
    assert not changed and not empty.any()
