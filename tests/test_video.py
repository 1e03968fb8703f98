"""Video mode (SAM 2.1): the host's memory selection against the golden's record of the
official predictor (no model, fast), errors, the streaming tracker, and the torch reference
against ``tests/golden/sam2_1_hiera_tiny_video.npz`` (first frame by default; every case and
frame under ``slow``). The clip stays in ``../shared/video/truck_pan``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from video_cases import CASES, GOLDEN, FakeEngine, clip, compare_case, replay

from edge_sam_sdk.errors import InputError
from edge_sam_sdk.testing import Golden
from edge_sam_sdk.video import Tracker, VideoPredictor
from edge_sam_sdk.video.bank import from_bf16_bits, to_bf16_bits
from edge_sam_sdk.video.frames import model_input


@pytest.fixture(scope="module")
def golden() -> Golden:
    return Golden(GOLDEN)


def fake_predictor() -> tuple[VideoPredictor, Any]:
    frames = [np.zeros((900, 1200, 3), np.uint8)] * 6
    predictor = VideoPredictor(FakeEngine())
    return predictor, predictor.init_state(frames)


@pytest.mark.parametrize("case", CASES)
def test_memory_selection_matches_official(case: str, golden: Golden) -> None:
    """Per step and object: which frames are memories (and their temporal index), which
    pointers (and their position), single/multimask, and which frames are reused."""
    predictor, state = fake_predictor()
    results = replay(predictor, state, golden, case)
    checked = 0
    for step in golden.case(f"video.{case}")["steps"]:
        for obj, rec in step.get("objects", {}).items():
            if rec.get("kind") != "track_step":
                continue
            out = results[step["step"]].objects[int(obj)]
            memory = rec["memory"]
            assert out.multimask == rec["multimask_output"], (step["step"], obj)
            if isinstance(memory, str):
                assert not hasattr(out, "selection"), (step["step"], obj)
                continue
            sel = out.selection
            spatial = [(m["frame"], m["tpos_index"]) for m in memory["spatial"]]
            pointers = [(m["frame"], m["tpos"]) for m in memory["obj_ptrs"]]
            assert [(t, i) for t, i, _ in sel.spatial] == spatial, (step["step"], obj)
            assert [(t, p) for t, p, _ in sel.pointers] == pointers, (step["step"], obj)
            checked += 1
        if step["action"] == "propagate_in_video":
            assert results[step["step"]].logits is not None
    bank_meta = golden.case(f"video.{case}")["final_bank"]
    for obj, rec in bank_meta.items():
        bank = state.banks[int(obj)]
        assert sorted(bank.cond) == rec["cond_frames"] and sorted(bank.non_cond) == rec["non_cond_frames"]
    assert checked > 0


def test_errors() -> None:
    predictor, state = fake_predictor()
    with pytest.raises(InputError, match="out of range"):
        predictor.add_new_points_or_box(state, 6, 1, points=[[1, 1]], labels=[1])
    with pytest.raises(InputError, match="no object has prompts"):
        list(predictor.propagate_in_video(state))
    with pytest.raises(InputError, match="unknown obj_id 3"):
        predictor.remove_object(state, 3)
    with pytest.raises(InputError, match="together"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[1, 1]])
    with pytest.raises(InputError, match="box"):
        predictor.add_new_points_or_box(state, 0, 1, box=[1, 2, 3])
    with pytest.raises(InputError, match="obj_id must be an int"):
        predictor.add_new_points_or_box(state, 0, "a", points=[[1, 1]], labels=[1])
    with pytest.raises(InputError, match="no frames"):
        predictor.init_state(Path(__file__).parent / "layouts")
    tracker = Tracker(FakeEngine())
    with pytest.raises(InputError, match="not loaded"):
        tracker.add_prompt(1, points=[[1, 1]], labels=[1], frame_idx=2)
    with pytest.raises(InputError, match="no object"):
        tracker.track(np.zeros((8, 8, 3), np.uint8))


def test_tracker_memory_is_constant() -> None:
    engine = FakeEngine()
    tracker = Tracker(engine, max_cond=2)
    sizes = []
    for t in range(40):
        if t in (0, 5, 9, 30):
            tracker.add_prompt(1, box=[10, 10, 60, 40])
        masks = tracker.track(np.zeros((48, 64, 3), np.uint8))
        assert set(masks) == {1} and masks[1].shape == (48, 64)
        sizes.append(tracker.memory_bytes()[1])
    bank = tracker.banks[1]
    assert sorted(bank.cond) == [9, 30] and min(bank.non_cond) == 39 - 14
    assert max(sizes[20:]) <= (2 + 6) * 64 * 64 * 64 * 2 + 17 * 1024
    with pytest.raises(InputError, match="unknown obj_id 2"):
        tracker.remove(2)


def test_bfloat16_rounding() -> None:
    x = np.array([1.0, 1.00390625, 1.01171875, -3.14159, 1e-30, 65504.0], np.float32)
    torch = pytest.importorskip("torch")
    ref = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    assert np.array_equal(from_bf16_bits(to_bf16_bits(x)), ref)


@pytest.fixture(scope="module")
def torch_predictor() -> VideoPredictor:
    pytest.importorskip("torch")
    return VideoPredictor.from_torch("sam2_1_hiera_tiny", "synthetic:0", cache_frames=6)


def test_first_frame_matches_golden(torch_predictor: VideoPredictor, golden: Golden) -> None:
    """Frame 0 of ``click``: frame loading, encoder, decoder without memory, pointer, and the
    preflight's memory encoding."""
    state = torch_predictor.init_state(clip())
    g = golden
    assert g.compare("video.frames.f0.model_input", model_input(state.frame(0))).ok
    feats = torch_predictor.features(state, 0).arrays
    for ours, theirs in (("vision_features", "image_embed"), ("high_res_feats_0", "high_res_feats_0")):
        assert g.compare(f"video.frames.f0.{theirs}", feats[ours]).ok
    _, ids, logits = torch_predictor.add_new_points_or_box(state, 0, 1, points=[[504.0, 378.0]], labels=[1])
    assert ids == [1]
    assert min(g.mask_iou("video.click.add1.masks", logits[:, 0] > 0)) >= 0.99
    assert g.compare("video.click.add1.video_res_logits", logits).ok
    out = state.banks[1].pending_cond[0]
    assert g.compare("video.click.add1.o1.obj_ptr", out.obj_ptr[None]).ok
    torch_predictor._preflight(state)
    c = g.compare("video.click.pre1_f0.o1.maskmem_features", from_bf16_bits(out.maskmem)[None])
    assert c.rel_l2 < 4e-3, c


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_video_case_matches_golden(case: str, torch_predictor: VideoPredictor, golden: Golden) -> None:
    """Every stored step: masks IoU >= 0.99 per object, logits and pointers within the graph
    bound, object scores within 1e-3 (GOLDEN.md, "Tolerances for video cases")."""
    state = torch_predictor.init_state(clip())
    failures = compare_case(golden, case, replay(torch_predictor, state, golden, case))
    assert not failures, "\n".join(failures)


def test_track_cli_writes_overlays_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``edgesam track`` on a 3-frame clip (the model replaced by the fake engine)."""
    import json

    from PIL import Image

    from edge_sam_sdk.cli import track
    from edge_sam_sdk.cli.main import main

    frames = tmp_path / "clip"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(np.full((30, 40, 3), 60 * i, np.uint8)).save(frames / f"{i:05d}.jpg")
    monkeypatch.setattr(track, "_predictor", lambda args: VideoPredictor(FakeEngine()))
    out, js = tmp_path / "overlay", tmp_path / "masks.json"
    assert main(["track", "torch:sam2_1_hiera_tiny", "--video", str(frames), "--point", "10,12",
                 "--frame", "1", "--out", str(out), "--json", str(js), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    data = json.loads(js.read_text())
    assert [f["frame"] for f in data["frames"]] == [0, 1, 2] and data["video_size"] == [30, 40]
    assert main(["track", "torch:sam2_1_hiera_tiny", "--video", str(frames), "--out", str(out)]) == 1
    assert main(["track", "torch:x", "--video", str(frames), "--point", "1,1", "--frame", "5",
                 "--out", str(tmp_path / "o2")]) == 1
    assert not (tmp_path / "o2").exists()


def test_track_cli_video_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A video file in, an MP4 overlay out (the ``video`` extra: imageio + av)."""
    iio = pytest.importorskip("imageio.v3")
    pytest.importorskip("av")
    from edge_sam_sdk.cli import track
    from edge_sam_sdk.cli.main import main

    clip_file = tmp_path / "clip.mp4"
    iio.imwrite(clip_file, np.stack([np.full((32, 48, 3), 50 * i, np.uint8) for i in range(3)]),
                plugin="pyav", codec="libx264", fps=5)
    monkeypatch.setattr(track, "_predictor", lambda args: VideoPredictor(FakeEngine()))
    out = tmp_path / "overlay.mp4"
    assert main(["track", "torch:sam2_1_hiera_tiny", "--video", str(clip_file), "--box", "2,2,20,20",
                 "--out", str(out), "--quiet"]) == 0
    assert len(list(iio.imiter(out, plugin="pyav"))) == 3


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["sam2_1_hiera_small", "sam2_1_hiera_base_plus", "sam2_1_hiera_large"])
def test_other_sizes_track_two_frames(variant: str) -> None:
    """The other Hiera sizes (key layouts: test_golden / test_layouts) track a box over two
    frames: finite logits of the video's size, a memory-conditioned second frame."""
    predictor = VideoPredictor.from_torch(variant, "synthetic:0")
    state = predictor.init_state([np.full((90, 120, 3), 40 * i, np.uint8) for i in range(2)])
    _, ids, first = predictor.add_new_points_or_box(state, 0, 1, box=[10, 10, 80, 60])
    frames = list(predictor.propagate_in_video(state))
    assert ids == [1] and [f for f, _, _ in frames] == [0, 1]
    for logits in (first, frames[1][2]):
        assert logits.shape == (1, 1, 90, 120) and np.isfinite(logits).all()
    assert sorted(state.banks[1].non_cond) == [1] and state.banks[1].non_cond[1].maskmem is not None
