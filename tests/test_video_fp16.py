"""fp16 ONNX video bundles (``export_video_bundle(..., precision="fp16")``): the Cast
round trips the float16 converter leaves are joined, each graph is judged along the
calibration track (``edge_sam_sdk.video.calibration``), and the golden video cases keep
their masks. Default: the round-trip rewrite, and EdgeTAM's bundle (~30 s to export) with
``click`` and ``box``; ``EDGESAM_VIDEO_ALL=1`` adds EdgeTAM's other cases and every case of
sam2_1_hiera_tiny (~70 s export, ~15 s a case)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

#: fp16 bars (GOLDEN.md: "fp16 / int8 exports ... bars per issue"): masks IoU >= 0.99 and object
#: scores within 1e-3 as for fp32; tensors within 100x the graph-parity bound (measured:
#: logits <= 2.6e-3, pointers <= 1e-3 rel. L2) and memories within 2e-2 (measured 1e-2).
TENSOR_FACTOR = 100.0
MEMORY_BOUND = 2e-2
ALL = os.environ.get("EDGESAM_VIDEO_ALL") == "1"


def test_round_trip_casts_are_joined_and_other_casts_kept() -> None:
    from onnx import TensorProto, helper

    from edge_sam_sdk.exporters.targets.onnx.quantization import _drop_round_trip_casts

    f32, f16, i64 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64
    nodes = [helper.make_node("Relu", ["x"], ["big"], name="relu"),
             helper.make_node("Cast", ["big"], ["big16"], to=f16, name="down"),
             helper.make_node("Cast", ["big16"], ["y"], to=f32, name="back"),  # a graph output
             helper.make_node("Cast", ["n"], ["n16"], to=f16, name="int_down"),  # int64 -> fp16
             helper.make_node("Cast", ["n16"], ["m"], to=f32, name="int_back")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", f32, [1, 3]),
                                            helper.make_tensor_value_info("n", i64, [2])],
                              [helper.make_tensor_value_info("y", f32, [1, 3]),
                               helper.make_tensor_value_info("m", f32, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _drop_round_trip_casts(model)
    onnx.checker.check_model(model)
    by_name = {n.name: n for n in model.graph.node}
    assert "down" not in by_name
    assert by_name["back"].op_type == "Identity" and by_name["back"].input == ["big"]
    assert by_name["int_back"].op_type == "Cast" and "int_down" in by_name  # not a float32 tensor

    import onnxruntime as ort

    x = np.array([[70000.0, -1.0, 3.0]], np.float32)  # beyond float16's 65504
    y, m = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x, "n": np.array([1, 2])})
    assert y.tolist() == [[70000.0, 0.0, 3.0]] and m.tolist() == [1.0, 2.0]


def _export(tmp_path_factory: pytest.TempPathFactory, variant: str, seed: int) -> Path:
    from edge_sam_sdk.video.export import export_video_bundle

    out = tmp_path_factory.mktemp("vb16") / variant
    return export_video_bundle(variant, f"synthetic:{seed}", out, precision="fp16")


@pytest.fixture(scope="module")
def edgetam_fp16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory, "edgetam", 3)


@pytest.fixture(scope="module")
def tiny_fp16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ALL:
        pytest.skip("sam2_1_hiera_tiny's fp16 video bundle takes ~70 s to export and ~15 s a case: "
                    "set EDGESAM_VIDEO_ALL=1 to opt in")
    return _export(tmp_path_factory, "sam2_1_hiera_tiny", 0)


@pytest.mark.slow
def test_edgetam_fp16_manifest_says_which_graphs_stay_fp32(edgetam_fp16: Path) -> None:
    from edge_sam_sdk.video.calibration import TRACK_BOUND

    m = json.loads((edgetam_fp16 / "manifest.json").read_text())
    assert m["precision"] == "fp16" and all(c["ok"] for c in m["fp32_export_parity"].values())
    assert all(c["ok"] is None for c in m["export_parity"].values())  # reported, not judged
    graphs = m["graphs"]
    # synthetic EdgeTAM's encoder is too ill-conditioned for fp16 (0.17 off on the track)
    encoder = graphs["video_encoder"]
    assert encoder["precision"] == "fp32" and "calibration track" in encoder["kept_fp32"]
    assert encoder["track_rel_l2"] > TRACK_BOUND
    for g in ("memory_attention", "video_decoder", "memory_encoder"):
        assert graphs[g]["precision"] == "fp16" and graphs[g]["track_rel_l2"] <= TRACK_BOUND, g
        model = onnx.load(str(edgetam_fp16 / graphs[g]["file"]))
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer), g
    assert not (edgetam_fp16 / ".fp32").exists()


def _check_case(bundle: Path, golden: str, case: str) -> None:
    from video_cases import WidenedGolden, clip, compare_case, replay

    from conftest import GOLDEN_DIR
    from edge_sam_sdk.video import VideoPredictor
    from edge_sam_sdk.video.bundle import load_video_engine

    g = WidenedGolden(GOLDEN_DIR / golden, TENSOR_FACTOR, "fp16: 100x the graph-parity bound")
    predictor = VideoPredictor(load_video_engine(bundle), cache_frames=6)
    failures = compare_case(g, case, replay(predictor, predictor.init_state(clip()), g, case), MEMORY_BOUND)
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["click", "box", "correction", "correction_cond", "reverse"])
def test_edgetam_fp16_video_case_keeps_masks(case: str, edgetam_fp16: Path) -> None:
    if case not in ("click", "box") and not ALL:
        pytest.skip("EdgeTAM's longer fp16 video cases: set EDGESAM_VIDEO_ALL=1 to opt in")
    _check_case(edgetam_fp16, "edgetam_video.npz", case)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["click", "box", "correction", "correction_cond", "two_objects", "reverse"])
def test_tiny_fp16_video_case_keeps_masks(case: str, tiny_fp16: Path) -> None:
    m = json.loads((tiny_fp16 / "manifest.json").read_text())
    assert {g["precision"] for g in m["graphs"].values()} == {"fp16"}  # every graph holds the track bound
    _check_case(tiny_fp16, "sam2_1_hiera_tiny_video.npz", case)
