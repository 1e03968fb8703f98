"""EdgeTAM video mode against ``edgetam_video.npz`` (seed 3) on torch: the memory selection
replayed without a model (512-token spatial slots, pointers without temporal position), the
perceiver's memory positions, frame 0 of ``click`` and frame 1's memory attention step by step,
several objects; every frame of every case opt-in (``EDGESAM_VIDEO_ALL=1``). The ONNX bundle's
cases are in ``test_video_onnx.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from video_cases import clip, replay

from conftest import GOLDEN_DIR
from edge_sam_sdk.testing import Golden

GOLDEN = GOLDEN_DIR / "edgetam_video.npz"
CASES = ["click", "box", "correction", "correction_cond", "reverse"]  # no two_objects (official raises)


@pytest.fixture(scope="module")
def golden() -> Golden:
    return Golden(GOLDEN)


@pytest.mark.parametrize("case", CASES)
def test_memory_selection_matches_official(case: str, golden: Golden) -> None:
    """Which frames are memories (with their temporal index) and which pointers, per step."""
    from test_video import fake_predictor

    predictor, state = fake_predictor()
    results = replay(predictor, state, golden, case)
    checked = 0
    for step in golden.case(f"video.{case}")["steps"]:
        for obj, rec in step.get("objects", {}).items():
            if rec.get("kind") != "track_step" or isinstance(rec["memory"], str):
                continue
            sel = results[step["step"]].objects[int(obj)].selection
            assert [(t, i) for t, i, _ in sel.spatial] == [(m["frame"], m["tpos_index"])
                                                          for m in rec["memory"]["spatial"]]
            # EdgeTAM's pointers carry no temporal position (recorded as None): frames only
            ptrs = rec["memory"]["obj_ptrs"]
            assert all(m["tpos"] is None for m in ptrs)
            assert [t for t, _, _ in sel.pointers] == [m["frame"] for m in ptrs]
            assert rec["memory"]["tokens"] == 512 * len(sel.spatial) + 4 * len(ptrs)  # 512-token slots
            checked += 1
    assert checked > 0


def test_perceiver_positions_match_official(golden: Golden) -> None:
    torch = pytest.importorskip("torch")
    from edge_sam_sdk.exporters.models.edgetam import edgetam
    from edge_sam_sdk.exporters.models.sam2_memory import sine_position_encoding

    p = edgetam().spatial_perceiver.eval()
    with torch.no_grad():
        tokens, pos = p(torch.zeros(1, 64, 64, 64), sine_position_encoding(64, 64, 64))
    assert tokens.shape == (1, 512, 64)
    assert golden.compare("video.maskmem_pos_enc", pos.numpy()).ok




@pytest.fixture(scope="module")
def model() -> Any:
    pytest.importorskip("torch")
    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.registry import get_variant

    return load_model(get_variant("edgetam"), "synthetic:3").eval()


def _frame0(model: Any, g: Golden) -> tuple[Any, Any, Any]:
    """Frame 0 of ``click`` on torch, checked step by step; -> perceiver tokens, positions, pointer."""
    import torch

    from edge_sam_sdk.exporters.models.edgetam import EdgeTamMemoryEncoderGraph
    from edge_sam_sdk.exporters.models.sam2_video import Sam2VideoDecoderGraph, Sam2VideoEncoderGraph
    from edge_sam_sdk.video.frames import frame_files, model_input, read_image

    x = model_input(read_image(frame_files(clip())[0]))
    assert g.compare("video.frames.f0.model_input", x).ok
    step = next(s for s in g.case("video.click")["steps"] if s["step"] == "add1")
    pts = step["objects"]["1"]["point_inputs"]
    coords = torch.tensor([pts["point_coords"] + [[0.0, 0.0]]], dtype=torch.float32)  # padding point
    labels = torch.tensor([pts["point_labels"] + [-1]], dtype=torch.float32)
    with torch.no_grad():
        emb, h0, h1, vis = Sam2VideoEncoderGraph(model)(torch.from_numpy(x))
        assert g.compare("video.frames.f0.image_embed", vis.numpy()).ok
        assert g.compare("video.frames.f0.high_res_feats_0", h0.numpy()).ok
        masks, iou, score, ptrs = Sam2VideoDecoderGraph(model)(emb, h0, h1, coords, labels,
                                                               torch.zeros(1, 1, 256, 256), torch.zeros(1))
        best = int(iou[0, 1:].argmax()) + 1  # one click: multimask, argmax IoU of tokens 1..3
        low = masks[:, best:best + 1]
        assert g.compare("video.click.add1.o1.low_res_logits", low.numpy()).ok
        assert g.compare("video.click.add1.o1.obj_ptr", ptrs[:, best].numpy()).ok
        np.testing.assert_allclose(score.numpy(), g["video.click.add1.o1.object_score_logits"], atol=1e-3)
        feats, pos = EdgeTamMemoryEncoderGraph(model)(vis, low, torch.ones(1))
    return feats, pos, ptrs[:, best]


def test_first_frame_matches_golden(model: Any, golden: Golden) -> None:
    """Frame 0 of ``click`` on torch: frame loading, encoder, decoder without memory (logits,
    pointer, object score) and the memory encoder + perceiver (512 tokens)."""
    feats, pos, _ = _frame0(model, golden)
    assert feats.shape == (1, 512, 64)
    assert golden.compare("video.click.pre1_f0.o1.maskmem_features", feats.numpy()).ok
    assert golden.compare("video.maskmem_pos_enc", pos.numpy()).ok


def test_second_frame_memory_attention_matches_golden(model: Any, golden: Golden) -> None:
    """Frame 1 of ``click``: frame 0's 512 bfloat16 memory tokens + 4 pointer tokens (no temporal
    position) -> memory attention (2 layers, ``RoPEAttentionv2``) -> ``pix_feat_with_mem``."""
    torch = pytest.importorskip("torch")
    from edge_sam_sdk.exporters.models.sam2_memory import sine_position_encoding
    from edge_sam_sdk.exporters.models.sam2_video import Sam2VideoEncoderGraph
    from edge_sam_sdk.video.frames import frame_files, model_input, read_image

    g = golden
    feats, pos, ptr = _frame0(model, g)
    with torch.no_grad():
        x1 = model_input(read_image(frame_files(clip())[1]))
        _, _, _, vis = Sam2VideoEncoderGraph(model)(torch.from_numpy(x1))
        memory = torch.cat([feats.to(torch.bfloat16).float(), ptr.reshape(1, 4, 64)], 1)
        memory_pos = torch.cat([pos + model.maskmem_tpos_enc[6].reshape(1, 1, 64), torch.zeros(1, 4, 64)], 1)
        assert g.compare("video.click.prop1_f1.o1.memory", memory.transpose(0, 1).numpy()).ok
        assert g.compare("video.click.prop1_f1.o1.memory_pos", memory_pos.transpose(0, 1).numpy()).ok
        y = model.memory_attention(vis.flatten(2).transpose(1, 2),
                                   sine_position_encoding(256, 64, 64).flatten(2).transpose(1, 2),
                                   memory, memory_pos, exclude=4)
    pix = y.transpose(1, 2).reshape(1, 256, 64, 64).numpy()
    assert g.compare("video.click.prop1_f1.o1.pix_feat_with_mem", pix).ok


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_video_case_matches_golden(case: str, golden: Golden) -> None:
    """Every frame of ``case`` through the torch video predictor (opt-in: ``EDGESAM_VIDEO_ALL=1``)."""
    import os

    if os.environ.get("EDGESAM_VIDEO_ALL") != "1":
        pytest.skip("every-frame EdgeTAM video cases: set EDGESAM_VIDEO_ALL=1 (and run slow tests) to opt in")
    pytest.importorskip("torch")
    from video_cases import compare_case

    from edge_sam_sdk.video.predictor import VideoPredictor

    predictor = VideoPredictor.from_torch("edgetam", "synthetic:3", cache_frames=6)
    state = predictor.init_state(clip())
    assert compare_case(golden, case, replay(predictor, state, golden, case)) == []


def test_two_objects_equal_single_runs_and_empty_object() -> None:
    """Several objects (the official EdgeTAM raises on two): each equals its single-object run
    on frames 0-1. Seed 0: the object score is <= 0, so every logit is -1024."""
    pytest.importorskip("torch")
    from edge_sam_sdk.video.predictor import VideoPredictor

    predictor = VideoPredictor.from_torch("edgetam", "synthetic:3", cache_frames=2)
    state = predictor.init_state(clip())
    prompts = {1: {"points": [[504.0, 378.0]], "labels": [1]}, 2: {"box": [300.0, 200.0, 900.0, 700.0]}}

    def run(objs: list[int]) -> list[np.ndarray]:
        predictor.reset_state(state)
        for obj in objs:
            predictor.add_new_points_or_box(state, 0, obj, **prompts[obj])
        return [logits for _, _, logits in predictor.propagate_in_video(state, max_frame_num_to_track=1)]

    both, one, two = run([1, 2]), run([1]), run([2])
    for f in range(2):
        np.testing.assert_allclose(both[f][0], one[f][0], atol=1e-4)
        np.testing.assert_allclose(both[f][1], two[f][0], atol=1e-4)
    empty = VideoPredictor.from_torch("edgetam", "synthetic:0", cache_frames=2)
    s0 = empty.init_state(clip())
    _, _, logits = empty.add_new_points_or_box(s0, 0, 1, **prompts[1])
    assert (logits == -1024.0).all()
