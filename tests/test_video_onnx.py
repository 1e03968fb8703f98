"""SAM 2.1 video bundles (ONNX): export with synthetic weights, the manifest's video contract,
and the golden video cases through onnxruntime with static memory slots (``slow``: the export
and ~45 frame steps at full slot count take minutes on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from video_cases import CASES, GOLDEN, clip, compare_case, replay

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
