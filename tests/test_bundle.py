"""Bundle loading validates; export is atomic and refuses to clobber."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import get_bundle
from edge_sam_sdk import BundleError, CheckpointError, EdgeSamError, load_bundle
from edge_sam_sdk.bundle import FORMAT_VERSION, read_manifest

SMALL = "mobile_sam"


@pytest.fixture()
def bundle_copy(onnx_bundles: dict, tmp_path: Path) -> Path:
    src = get_bundle(onnx_bundles, SMALL)
    dst = tmp_path / "b"
    shutil.copytree(src, dst)
    return dst


def test_manifest_describes_everything(onnx_bundles: dict) -> None:
    m = read_manifest(get_bundle(onnx_bundles, SMALL))
    assert m["format_version"] == FORMAT_VERSION and m["variant"] == SMALL
    assert m["processing"]["interpolation"] == "pil_bilinear"
    enc, dec = m["graphs"]["encoder"], m["graphs"]["decoder"]
    assert [t["name"] for t in enc["inputs"]] == ["image"]
    projections = ["layer0_image_keys", "layer0_image_values", "layer0_image_queries"]
    assert [t["name"] for t in enc["outputs"]] == ["image_embeddings", *projections]
    assert [t["name"] for t in dec["inputs"]] == ["image_embeddings", *projections, "point_coords",
                                                  "point_labels", "mask_input", "has_mask_input"]
    assert dec["inputs"][1]["shape"] == [1, 4096, 128] and dec["inputs"][4]["shape"] == ["B", "N", 2]
    assert dec["extra"]["from_encoder"] == ["image_embeddings", *projections]
    assert enc["gflops"]["value"] > dec["gflops"]["value"] > 0 and dec["gflops"]["dims"] == {"B": 1, "N": 2}
    assert dec["extra"]["mask_selection"] == {"multimask": [1, 2, 3], "single": [0]}
    assert enc["opset"] >= 17 and enc["simplified"]
    for g in ("encoder", "decoder"):
        assert m["export_parity"][g]["ok"]


def test_missing_file(bundle_copy: Path) -> None:
    (bundle_copy / "decoder.onnx").unlink()
    with pytest.raises(BundleError, match="decoder.onnx.*missing"):
        load_bundle(bundle_copy)


def test_sha_mismatch(bundle_copy: Path) -> None:
    with open(bundle_copy / "decoder.onnx", "ab") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(bundle_copy)


def test_unknown_format_version(bundle_copy: Path) -> None:
    m = json.loads((bundle_copy / "manifest.json").read_text())
    m["format_version"] = 999
    (bundle_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format version 999"):
        load_bundle(bundle_copy)


def test_corrupt_manifest(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="corrupt"):
        load_bundle(bundle_copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope")


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    from edge_sam_sdk.exporters.export import export_bundle

    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    with pytest.raises(CheckpointError):
        export_bundle(SMALL, str(bad), out)
    assert list(tmp_path.iterdir()) == [bad]


def test_export_refuses_non_empty_folder(tmp_path: Path) -> None:
    from edge_sam_sdk.exporters.export import export_bundle

    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(EdgeSamError, match="overwrite"):
        export_bundle(SMALL, "synthetic:0", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_unknown_target_and_precision(tmp_path: Path) -> None:
    from edge_sam_sdk.exporters.export import export_bundle

    with pytest.raises(EdgeSamError, match="target"):
        export_bundle(SMALL, "synthetic:0", tmp_path / "a", target="nope")
    with pytest.raises(EdgeSamError, match="precision"):
        export_bundle(SMALL, "synthetic:0", tmp_path / "b", precision="int3")
    assert list(tmp_path.iterdir()) == []
