"""Video bundles (ONNX): export with synthetic weights, the manifest's video contract, and the
golden video cases through onnxruntime with static memory slots (``slow``: the export and ~45
frame steps at full slot count take minutes on 2 CPU cores). SAM 2.1 tiny: every case;
EdgeTAM: ``click`` and ``box`` by default, every case with ``EDGESAM_VIDEO_ALL=1``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from video_cases import CASES, GOLDEN, clip, compare_case, replay

from conftest import GOLDEN_DIR
from edge_sam_sdk.testing import Golden
from edge_sam_sdk.video import VideoPredictor

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def video_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edge_sam_sdk.video.export import export_video_bundle

    return export_video_bundle("sam2_1_hiera_tiny", "synthetic:0", tmp_path_factory.mktemp("vb") / "tiny")


def test_manifest_describes_the_contract(video_bundle: Path) -> None:
    m = json.loads((video_bundle / "manifest.json").read_text())
    assert m["kind"] == "video" and m["video"]["spatial_slots"] == 8 and m["video"]["ptr_slots"] == 17
    assert all(c["ok"] for c in m["export_parity"].values())
    shapes = {t["name"]: t["shape"] for t in m["graphs"]["memory_attention"]["inputs"]}
    assert shapes["memory_features"] == [8, 64, 64, 64] and shapes["obj_ptrs"] == [17, 256]


@pytest.mark.parametrize("case", CASES)
def test_onnx_video_case_matches_golden(case: str, video_bundle: Path) -> None:
    from edge_sam_sdk.video.bundle import load_video_engine

    predictor = VideoPredictor(load_video_engine(video_bundle), cache_frames=6)
    state = predictor.init_state(clip())
    g = Golden(GOLDEN)
    failures = compare_case(g, case, replay(predictor, state, g, case))
    assert not failures, "\n".join(failures)


EDGETAM_GOLDEN = GOLDEN_DIR / "edgetam_video.npz"
EDGETAM_CASES = ["click", "box", "correction", "correction_cond", "reverse"]  # official: one object


@pytest.fixture(scope="module")
def edgetam_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edge_sam_sdk.video.export import export_video_bundle

    return export_video_bundle("edgetam", "synthetic:3", tmp_path_factory.mktemp("vb") / "edgetam")


def test_edgetam_manifest_states_512_token_slots(edgetam_bundle: Path) -> None:
    m = json.loads((edgetam_bundle / "manifest.json").read_text())
    assert m["video"]["memory_shape"] == [512, 64] and m["video"]["reuse_prompted_frames"] is True
    assert "512 tokens" in m["video"]["memory_slot"]
    inputs = {t["name"]: t["shape"] for t in m["graphs"]["memory_attention"]["inputs"]}
    assert inputs["memory_features"] == [8, 512, 64] and "obj_ptr_pos" not in inputs
    assert [t["name"] for t in m["graphs"]["memory_encoder"]["inputs"]] == [
        "vision_features", "mask_logits", "binarize"]
    assert all(c["ok"] for c in m["export_parity"].values())


@pytest.mark.parametrize("case", EDGETAM_CASES)
def test_edgetam_onnx_video_case_matches_golden(case: str, edgetam_bundle: Path) -> None:
    from edge_sam_sdk.video.bundle import load_video_engine

    if case not in ("click", "box") and os.environ.get("EDGESAM_VIDEO_ALL") != "1":
        pytest.skip("EdgeTAM's longer video cases through ONNX: set EDGESAM_VIDEO_ALL=1 to opt in")
    predictor = VideoPredictor(load_video_engine(edgetam_bundle), cache_frames=6)
    assert predictor.reuse_prompted_frames  # from the manifest
    g = Golden(EDGETAM_GOLDEN)
    failures = compare_case(g, case, replay(predictor, predictor.init_state(clip()), g, case))
    assert not failures, "\n".join(failures)
