"""Processing unit tests: Pillow-exact resize, coordinates, prompts, mask post-processing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_sam_sdk.errors import InputError
from edge_sam_sdk.processing import (
    ProcessingSpec,
    decoder_prompts,
    postprocess_masks,
    preprocess,
    resized_shape,
    select_masks,
    transform_boxes,
    transform_coords,
)
from edge_sam_sdk.resize import resize_image

SPEC = ProcessingSpec()
PIL_FILTERS = {"pil_bilinear": Image.BILINEAR, "pil_bicubic": Image.BICUBIC}


@pytest.mark.parametrize("interp", sorted(PIL_FILTERS))
def test_resize_equals_pillow(interp: str) -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w, oh, ow = (int(v) for v in rng.integers(1, 160, 4))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = np.asarray(Image.fromarray(img).resize((ow, oh), PIL_FILTERS[interp]))
        np.testing.assert_array_equal(resize_image(img, (oh, ow), interp), ref, err_msg=str((h, w, oh, ow)))


def test_resized_shape_longest_side() -> None:
    assert resized_shape((1200, 1800), 1024) == (683, 1024)
    assert resized_shape((1800, 1200), 1024) == (1024, 683)
    assert resized_shape((64, 64), 1024) == (1024, 1024)


def test_preprocess_layout() -> None:
    img = np.full((30, 60, 3), 200, np.uint8)
    x, resized = preprocess(img, SPEC)
    assert x.shape == (1, 3, 1024, 1024) and x.dtype == np.float32 and resized == (512, 1024)
    np.testing.assert_allclose(x[0, 0, 0, 0], (200 - 123.675) / 58.395, rtol=1e-6)
    assert np.all(x[:, :, 512:, :] == 0)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), [[1, 2, 3]]])
def test_preprocess_rejects_bad_images(bad: object) -> None:
    with pytest.raises(InputError):
        preprocess(bad, SPEC)  # type: ignore[arg-type]


def test_coords_and_boxes() -> None:
    c = transform_coords(np.array([[1800.0, 1200.0], [0.0, 0.0]]), (1200, 1800), SPEC)
    np.testing.assert_allclose(c, [[1024, 683], [0, 0]], rtol=1e-6)
    b = transform_boxes(np.array([[0, 0, 900, 600]]), (1200, 1800), SPEC)
    assert b.shape == (1, 2, 2)
    np.testing.assert_allclose(b[0, 1], [512, 341.5], rtol=1e-6)


def test_decoder_prompts_padding_and_boxes() -> None:
    pts = np.array([[[10.0, 20.0]]])
    labs = np.array([[1.0]])
    c, lab = decoder_prompts(pts, labs, None)
    assert c.shape == (1, 2, 2) and lab.tolist() == [[1.0, -1.0]]
    c, lab = decoder_prompts(pts, labs, np.array([[[1.0, 2.0], [3.0, 4.0]]]))
    assert lab.tolist() == [[1.0, 2.0, 3.0]] and c[0, 2].tolist() == [3.0, 4.0]
    c, lab = decoder_prompts(pts, labs, None, spec=ProcessingSpec(pad_point="never"))
    assert c.shape == (1, 1, 2) and lab.tolist() == [[1.0]]
    c, lab = decoder_prompts(None, None, None, batch=2)
    assert c.shape == (2, 0, 2) and lab.shape == (2, 0)


def test_postprocess_equals_torch_interpolate() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    low = rng.normal(size=(2, 3, 256, 256)).astype(np.float32)
    resized, original = (683, 1024), (1200, 1800)
    t = F.interpolate(torch.from_numpy(low), (1024, 1024), mode="bilinear", align_corners=False)
    t = t[..., : resized[0], : resized[1]]
    t = F.interpolate(t, original, mode="bilinear", align_corners=False).numpy()
    ours = postprocess_masks(low, original, SPEC)
    assert ours.shape == (2, 3, 1200, 1800)
    np.testing.assert_allclose(ours, t, atol=2e-4)  # float32 rounding of the composed matrices


def test_crop_low_res_postprocess_equals_torch() -> None:
    """NanoSAM's rule: crop the low-res logits (short side truncated), resize once."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    low = np.random.default_rng(2).normal(size=(1, 4, 256, 256)).astype(np.float32)
    spec = ProcessingSpec(postprocess="crop_low_res")
    for original, lim in (((1200, 1800), (170, 256)), ((1800, 1200), (256, 170))):
        t = torch.from_numpy(low)[..., : lim[0], : lim[1]]
        t = F.interpolate(t, original, mode="bilinear", align_corners=False).numpy()
        np.testing.assert_allclose(postprocess_masks(low, original, spec), t, atol=2e-4)


def test_floor_resize_rule_and_exact_prompt_scale() -> None:
    """NanoSAM: int() truncation of the short side, prompts scaled by 1024 / max(H, W)."""
    assert resized_shape((1200, 1800), 1024, "longest_side_floor") == (682, 1024)
    assert resized_shape((1800, 1200), 1024, "longest_side_floor") == (1024, 682)
    spec = ProcessingSpec(resize="longest_side_floor")
    np.testing.assert_allclose(transform_coords(np.array([[900.0, 600.0]]), (1200, 1800), spec),
                               [[512.0, 341.3333]], rtol=1e-6)
    x, resized = preprocess(np.zeros((1200, 1800, 3), np.uint8), spec)
    assert resized == (682, 1024) and x.shape == (1, 3, 1024, 1024)


def test_prompt_frame_larger_than_input() -> None:
    """EfficientViT-SAM L: 512 px encoder input, prompts and post-processing in the 1024 frame."""
    spec = ProcessingSpec(input_size=512, prompt_frame=1024)
    _, resized = preprocess(np.zeros((1200, 1800, 3), np.uint8), spec)
    assert resized == (341, 512)
    np.testing.assert_allclose(transform_coords(np.array([[1800.0, 1200.0]]), (1200, 1800), spec),
                               [[1024.0, 683.0]], rtol=1e-6)


def test_unknown_processing_rules_are_refused() -> None:
    with pytest.raises(InputError, match="unknown postprocess"):
        ProcessingSpec(postprocess="nearest")
    with pytest.raises(InputError, match="unknown resize"):
        ProcessingSpec(resize="squash")
    with pytest.raises(InputError, match="nothing to crop"):
        ProcessingSpec(resize="stretch")  # stretch needs postprocess "resize"
    assert ProcessingSpec(pad_point=False).pad_point == "never"  # type: ignore[arg-type]


@pytest.mark.parametrize("rule,kw", [("torch_bilinear", {"mode": "bilinear"}),
                                     ("torch_bilinear_aa", {"mode": "bilinear", "antialias": True}),
                                     ("torch_bicubic", {"mode": "bicubic"})])
def test_float_resize_equals_torch_interpolate(rule: str, kw: dict) -> None:
    """EfficientSAM / SAM 2 resize the float image with torch, not Pillow: ours equals it."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for h, w, oh, ow in ((120, 180, 64, 64), (30, 20, 64, 96), (50, 70, 50, 33)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
        ref = torch.nn.functional.interpolate(t, (oh, ow), align_corners=False, **kw)[0].permute(1, 2, 0)
        np.testing.assert_allclose(resize_image(img, (oh, ow), rule), ref.numpy(), atol=2e-3)


def test_stretch_rule_and_direct_mask_resize() -> None:
    torch = pytest.importorskip("torch")
    spec = ProcessingSpec(resize="stretch", interpolation="torch_bilinear_aa", postprocess="resize",
                          mask_interpolation="torch_bicubic")
    x, resized = preprocess(np.zeros((1200, 1800, 3), np.uint8), spec)
    assert resized == (1024, 1024) and x.shape == (1, 3, 1024, 1024)
    np.testing.assert_allclose(transform_coords(np.array([[900.0, 600.0]]), (1200, 1800), spec),
                               [[512.0, 512.0]])
    low = np.random.default_rng(4).normal(size=(1, 3, 256, 256)).astype(np.float32)
    t = torch.nn.functional.interpolate(torch.from_numpy(low), (300, 450), mode="bicubic",
                                        align_corners=False).numpy()
    np.testing.assert_allclose(postprocess_masks(low, (300, 450), spec), t, atol=2e-4)


def test_prompt_rules_of_sam2_and_efficient_sam() -> None:
    pts, labs = np.array([[[10.0, 20.0]]]), np.array([[1.0]])
    box = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    sam2 = ProcessingSpec(pad_point="always", box_first=True)
    c, lab = decoder_prompts(pts, labs, box, spec=sam2)
    assert lab.tolist() == [[2.0, 3.0, 1.0, -1.0]] and c[0, 0].tolist() == [1.0, 2.0]
    esam = ProcessingSpec(pad_point="never", max_points=6, pad_coord=-1.0)
    c, lab = decoder_prompts(pts, labs, box, spec=esam)
    assert lab.tolist() == [[1.0, 2.0, 3.0, -1.0, -1.0, -1.0]] and c[0, 5].tolist() == [-1.0, -1.0]
    with pytest.raises(InputError, match="at most 6 prompt points"):
        decoder_prompts(np.zeros((1, 7, 2)), np.ones((1, 7)), None, spec=esam)


def test_single_mask_fallback_picks_the_best_multimask_token() -> None:
    """SAM 2's dynamic multimask: an unstable token 0 is replaced by the best of 1..3."""
    low = np.zeros((2, 4, 8, 8), np.float32)
    low[0, 0] = 1.0                 # stable token 0: kept
    low[1, 0, :4] = 0.01            # unstable (0 of 32 above +0.05): replaced
    low[:, 2] = 5.0
    iou = np.array([[0.1, 0.2, 0.9, 0.3]] * 2, np.float32)
    fb = {"stability_delta": 0.05, "stability_thresh": 0.98}
    masks, scores = select_masks(low, iou, [0], fb, [1, 2, 3])
    assert scores[:, 0].tolist() == pytest.approx([0.1, 0.9])
    assert masks[0, 0, 0, 0] == 1.0 and masks[1, 0, 0, 0] == 5.0
    _, scores = select_masks(low, iou, [1, 2, 3], fb, [1, 2, 3])
    assert scores.shape == (2, 3)


@pytest.mark.parametrize("rule", ["pil_bilinear", "pil_bicubic", "torch_bilinear", "torch_bilinear_aa",
                                  "torch_bicubic"])
def test_banded_resize_is_bit_identical(rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resampling in bands of lines (bounded memory) gives exactly the one-band result, and the
    ``pil_*`` rules stay equal to Pillow, whatever the band size."""
    import edge_sam_sdk.resize as R

    rng = np.random.default_rng(3)
    for (h, w), size in (((301, 517), (123, 211)), ((64, 900), (40, 700)), ((500, 80), (1024, 161))):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        monkeypatch.setattr(R, "BAND_BYTES", 1 << 40)
        whole = resize_image(img, size, rule)
        for band in (1, 5000, 80000):
            monkeypatch.setattr(R, "BAND_BYTES", band)
            assert np.array_equal(resize_image(img, size, rule), whole), (rule, band)
        if rule.startswith("pil_"):
            resample = Image.BILINEAR if rule == "pil_bilinear" else Image.BICUBIC
            assert np.array_equal(whole, np.asarray(Image.fromarray(img).resize(size[::-1], resample)))


def test_image_limits() -> None:
    from edge_sam_sdk.processing import MAX_IMAGE_PIXELS, check_geometry

    with pytest.raises(InputError, match="too elongated"):
        check_geometry((1, 2100), ProcessingSpec())
    check_geometry((1, 2000), ProcessingSpec())
    with pytest.raises(InputError, match="too elongated"):  # NanoSAM's low-res crop: 256:1
        check_geometry((1, 300), ProcessingSpec(resize="longest_side_floor", postprocess="crop_low_res"))
    big = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (MAX_IMAGE_PIXELS // 1000 + 1, 1000, 3))
    with pytest.raises(InputError, match="downscale it first"):
        preprocess(big, ProcessingSpec())
