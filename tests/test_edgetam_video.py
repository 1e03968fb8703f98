"""EdgeTAM video mode, fast checks against ``edgetam_video.npz`` (seed 3): the memory selection
replayed without a model (512-token spatial slots, pointers without temporal position) and the
perceiver's memory positions. The memory-attention graph and the full propagation are not
implemented yet."""

from __future__ import annotations

import pytest
from video_cases import replay

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

