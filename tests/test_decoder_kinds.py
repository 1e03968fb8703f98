"""Decoder kinds other than SAM's, through the ONNX bundle and the one ``SamPredictor``:
the manifest names each graph's extra inputs/outputs, prompts a kind cannot take are a
clear error, and batching equals single calls under each kind's prompt rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import get_bundle
from edge_sam_sdk import InputError, SamPredictor, load_bundle
from edge_sam_sdk.visualize import demo_image

ESAM, SAM2 = "efficient_sam_vitt", "sam2_1_hiera_tiny"


def _predictor(bundles: dict, variant: str) -> SamPredictor:
    p = SamPredictor(load_bundle(get_bundle(bundles, variant)))
    p.set_image(demo_image())
    return p


def _io(manifest: dict, graph: str, side: str) -> dict[str, list]:
    return {t["name"]: t["shape"] for t in manifest["graphs"][graph][side]}


def test_manifest_names_decoder_kind_and_extra_tensors(onnx_bundles: dict) -> None:
    m = json.loads((get_bundle(onnx_bundles, SAM2) / "manifest.json").read_text())
    assert m["decoder_kind"] == "sam2"
    feats = {"high_res_feats_0": [1, 32, 256, 256], "high_res_feats_1": [1, 64, 128, 128]}
    assert feats.items() <= _io(m, "encoder", "outputs").items()
    assert feats.items() <= _io(m, "decoder", "inputs").items()
    assert _io(m, "decoder", "outputs")["object_score_logits"] == ["B", 1]
    extra = m["graphs"]["decoder"]["extra"]
    assert extra["from_encoder"] == ["image_embeddings", *feats]
    assert extra["mask_selection"]["single_fallback"] == {"stability_delta": 0.05, "stability_thresh": 0.98}
    assert m["processing"]["resize"] == "stretch" and m["processing"]["box_first"] is True

    m = json.loads((get_bundle(onnx_bundles, ESAM) / "manifest.json").read_text())
    assert m["decoder_kind"] == "efficient_sam"
    inputs = _io(m, "decoder", "inputs")
    assert "mask_input" not in inputs and inputs["point_coords"] == ["B", 6, 2]
    assert m["processing"]["max_points"] == 6 and m["processing"]["pad_coord"] == -1.0


def test_efficient_sam_refuses_what_it_cannot_take(onnx_bundles: dict) -> None:
    p = _predictor(onnx_bundles, ESAM)
    with pytest.raises(InputError, match="takes no mask_input"):
        p.predict(np.array([[100, 200]]), np.array([1]), mask_input=np.zeros((1, 256, 256)))
    with pytest.raises(InputError, match="at most 6 prompt points"):
        p.predict(np.array([[10 * i, 20] for i in range(5)]), np.ones(5), box=np.array([0, 0, 50, 50]))


@pytest.mark.parametrize("variant", [ESAM, SAM2])
def test_batch_equals_single_calls(variant: str, onnx_bundles: dict) -> None:
    p = _predictor(onnx_bundles, variant)
    boxes = np.array([[100, 150, 400, 450], [500, 200, 700, 500]], dtype=np.float64)
    mb, sb, lb = p.predict_batch(boxes=boxes, multimask_output=False)
    batch_extra = dict(p.extra_outputs)
    for i, box in enumerate(boxes):
        m, s, low = p.predict(box=box, multimask_output=False)
        assert m.shape == (1, 600, 900)
        np.testing.assert_allclose(lb[i], low, atol=1e-4)
        np.testing.assert_allclose(sb[i], s, atol=1e-5)
        for k, v in p.extra_outputs.items():
            np.testing.assert_allclose(batch_extra[k][i], v[0], atol=1e-4)


def test_sam2_surfaces_object_score_and_clamps_logits(onnx_bundles: dict) -> None:
    p = _predictor(onnx_bundles, SAM2)
    masks, scores, low = p.predict(np.array([[300, 200]]), np.array([1]))
    assert masks.shape == (3, 600, 900) and scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1))  # IoU through a sigmoid
    assert p.extra_outputs["object_score_logits"].shape == (1, 1)
    assert np.abs(low).max() <= 32.0
    refined, _, _ = p.predict(np.array([[300, 200]]), np.array([1]), mask_input=low[:1],
                              multimask_output=False)
    assert refined.shape == (1, 600, 900)


@pytest.mark.parametrize("variant", [ESAM, SAM2])
def test_cli_predict_verify_bench(variant: str, onnx_bundles: dict, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from edge_sam_sdk.cli import main
    from edge_sam_sdk.visualize import save_png

    bundle = str(get_bundle(onnx_bundles, variant))
    save_png(demo_image(), tmp_path / "img.png")
    assert main(["predict", bundle, "--image", str(tmp_path / "img.png"), "--point", "270,330,1",
                 "--box", "160,230,420,450", "--out", str(tmp_path / "ov.png")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["iou_predictions"]) == 1
    if variant == SAM2:
        assert np.asarray(out["object_score_logits"]).shape == (1, 1)
    assert main(["verify", bundle, "--checkpoint", "synthetic:0"]) == 0
    assert main(["bench", bundle, "--runs", "1", "--warmup", "0"]) == 0
