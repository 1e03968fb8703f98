"""`edgesam label`: a folder or an image list to one COCO file; resumable, bad images skipped,
atomic output, settings checked against the journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import get_bundle
from edge_sam_sdk import InputError
from edge_sam_sdk.cli import main
from edge_sam_sdk.everything import labelling as L
from edge_sam_sdk.everything import mask_ops as M
from edge_sam_sdk.visualize import demo_image, save_png

SETTINGS = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def bundle_path(onnx_bundles: dict) -> Path:
    return Path(get_bundle(onnx_bundles, "mobile_sam"))


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    save_png(demo_image(64, 96), root / "a.png")
    save_png(demo_image(80, 60), root / "sub" / "b.png")
    (root / "bad.jpg").write_bytes(b"not an image at all")
    (root / "notes.txt").write_text("not listed: no image extension")
    return root


def test_folder_to_coco(images: Path, bundle_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "ann" / "coco.json"
    summary = L.label(images, bundle_path, out, SETTINGS, threads=1, progress=False)
    assert summary["images"] == 2 and [f["file_name"] for f in summary["failed"]] == ["bad.jpg"]
    doc = json.loads(out.read_text())
    assert [(im["id"], im["file_name"], im["width"], im["height"]) for im in doc["images"]] == [
        (1, "a.png", 96, 64), (2, "sub/b.png", 60, 80)]
    assert doc["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    ids = [a["id"] for a in doc["annotations"]]
    assert ids and ids == list(range(1, len(ids) + 1))
    for ann in doc["annotations"]:
        assert set(ann) >= {"id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd",
                            "score"}
        image = doc["images"][ann["image_id"] - 1]
        mask = M.rle_to_mask(ann["segmentation"])
        assert mask.shape == (image["height"], image["width"]) and int(mask.sum()) == ann["area"]
        assert ann["bbox"] == M.box_xyxy_to_xywh(M.batched_mask_to_box(mask)).tolist()
        assert isinstance(ann["segmentation"]["counts"], str) and 0.0 <= ann["score"]
    assert doc["info"]["failed"][0]["error"].startswith("InputError")
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under numpy 2
def test_pycocotools_reads_the_file(images: Path, bundle_path: Path, tmp_path: Path) -> None:
    coco_mod = pytest.importorskip("pycocotools.coco", reason="pycocotools is not installed "
                                   "(pip install 'edgesam[dev]'); the COCO file is checked with it")
    out = tmp_path / "coco.json"
    L.label(images, bundle_path, out, SETTINGS, threads=1, progress=False)
    coco = coco_mod.COCO(str(out))
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[1]))[0]
    assert int(coco.annToMask(ann).sum()) == ann["area"]


def test_resume_skips_done_images(images: Path, bundle_path: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "coco.json"
    L.label(images, bundle_path, out, SETTINGS, threads=1, progress=False)
    first = json.loads(out.read_text())
    journal = out.parent / "coco.json.parts" / "journal.jsonl"
    with open(journal, "a") as f:
        f.write('{"file_name": "sub/b.png", "wid')  # a line cut short by a kill: ignored
    calls: list[str] = []
    real = L.label_image

    def counting(generator: Any, name: str, path: str, boxes: Any = None) -> dict[str, Any]:
        calls.append(name)
        return real(generator, name, path, boxes)

    monkeypatch.setattr(L, "label_image", counting)
    save_png(demo_image(50, 70), images / "c.png")
    summary = L.label(images, bundle_path, out, SETTINGS, threads=1, progress=False)
    assert calls == ["bad.jpg", "c.png"]  # errors are retried, finished images skipped
    doc = json.loads(out.read_text())
    assert summary["images"] == 3
    assert [im["file_name"] for im in doc["images"]] == ["a.png", "c.png", "sub/b.png"]
    assert doc["annotations"][0] == first["annotations"][0]
    with pytest.raises(InputError, match="other settings"):
        L.label(images, bundle_path, out, dict(SETTINGS, points_per_side=3), progress=False)


def test_list_file_and_errors(images: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# my images\nphotos/a.png\n\nphotos/sub/b.png\n")
    assert L.list_images(listing) == [("photos/a.png", str(tmp_path / "photos/a.png")),
                                      ("photos/sub/b.png", str(tmp_path / "photos/sub/b.png"))]
    with pytest.raises(InputError, match="does not exist"):
        L.list_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        L.list_images(tmp_path / "empty")
    listing.write_text("photos/a.png\nphotos/a.png\n")
    with pytest.raises(InputError, match="twice"):
        L.list_images(listing)
    with pytest.raises(InputError, match="unknown labelling settings"):
        L.generator_settings({"points_per_sid": 4})


def test_cli_label(images: Path, bundle_path: Path, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.json"
    common = [str(images), "--bundle", str(bundle_path), "--out", str(out), "--points-per-side", "2",
              "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--threads", "1"]
    assert main(["label", *common, "--no-progress", "--sampling", "hierarchical", "--points-per-side", "4",
                 "--mode", "fast"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 2
    assert summary["annotations"] == len(json.loads(out.read_text())["annotations"])
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.png": [[10, 10, 50, 40]]}))
    assert main(["label", *common, "--no-progress", "--sampling", "boxes", "--boxes", str(boxes),
                 "--out", str(tmp_path / "boxes_out.json")]) == 0
    doc = json.loads((tmp_path / "boxes_out.json").read_text())
    assert [a["image_id"] for a in doc["annotations"]] == [1]  # b.png has no boxes: no masks
    assert np.array(doc["annotations"][0]["point_coords"]).shape == (2, 2)
    assert main(["label", *common, "--points-per-side", "3000"]) == 1
    assert "9,000,000 prompts per crop" in capsys.readouterr().err
    assert main(["label", str(tmp_path / "missing"), "--bundle", str(bundle_path), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err
