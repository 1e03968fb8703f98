"""SamPredictor: batching equals single calls, prompt kinds, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import get_bundle
from edge_sam_sdk import InputError, SamPredictor, load_bundle
from edge_sam_sdk.visualize import demo_image

SMALL = "mobile_sam"


@pytest.fixture(scope="module")
def predictor(onnx_bundles: dict) -> SamPredictor:
    p = SamPredictor(load_bundle(get_bundle(onnx_bundles, SMALL)))
    p.set_image(demo_image())
    return p


def test_shapes(predictor: SamPredictor) -> None:
    m, s, low = predictor.predict(np.array([[100, 200]]), np.array([1]))
    assert m.shape == (3, 600, 900) and m.dtype == bool and s.shape == (3,) and low.shape == (3, 256, 256)
    m, s, low = predictor.predict(np.array([[100, 200]]), np.array([1]), multimask_output=False,
                                  return_logits=True)
    assert m.shape == (1, 600, 900) and m.dtype == np.float32
    assert predictor.get_image_embedding().shape == (1, 256, 64, 64)


def test_batch_equals_single_calls(predictor: SamPredictor) -> None:
    boxes = np.array([[100, 150, 400, 450], [500, 200, 700, 500]], dtype=np.float64)
    mb, sb, lb = predictor.predict_batch(boxes=boxes, multimask_output=False)
    for i, box in enumerate(boxes):
        m, s, low = predictor.predict(box=box, multimask_output=False)
        np.testing.assert_allclose(lb[i], low, atol=1e-4)
        np.testing.assert_allclose(sb[i], s, atol=1e-5)


def test_mask_only_and_bgr(predictor: SamPredictor) -> None:
    _, _, low = predictor.predict(np.array([[100, 200]]), np.array([1]), multimask_output=False)
    m, s, _ = predictor.predict(mask_input=low, multimask_output=False)
    assert m.shape == (1, 600, 900)
    emb = predictor.get_image_embedding().copy()
    image = demo_image()
    predictor.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")
    np.testing.assert_allclose(predictor.get_image_embedding(), emb, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"point_coords": np.zeros((2, 3)), "point_labels": np.ones(2)}, "Nx2"),
    ({"point_coords": np.zeros((2, 2)), "point_labels": np.ones(3)}, "does not match"),
    ({"point_coords": np.zeros((1, 2)), "point_labels": np.array([7])}, "point_labels must be"),
    ({"point_coords": np.zeros((1, 2))}, "together"),
    ({"box": np.zeros(3)}, "XYXY"),
    ({"mask_input": np.zeros((1, 64, 64))}, "256x256"),
    ({"point_coords": np.array([[np.nan, 1.0]]), "point_labels": np.ones(1)}, "NaN"),
    ({"point_coords": "abc", "point_labels": np.ones(1)}, "numeric"),
    ({"point_coords": np.zeros((1, 2)), "point_labels": np.ones(1), "num_multimask_outputs": 2},
     r"num_multimask_outputs must be one of \[1, 3, 4\]"),
])
def test_bad_prompts(predictor: SamPredictor, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        predictor.predict(**kwargs)


def test_batch_size_mismatch(predictor: SamPredictor) -> None:
    with pytest.raises(InputError, match="batch sizes differ"):
        predictor.predict_batch(np.zeros((2, 1, 2)), np.ones((2, 1)), boxes=np.zeros((3, 4)))


def test_predict_before_set_image(onnx_bundles: dict) -> None:
    p = SamPredictor(load_bundle(get_bundle(onnx_bundles, SMALL)))
    with pytest.raises(InputError, match="set_image"):
        p.predict(np.array([[1, 2]]), np.array([1]))
    with pytest.raises(InputError, match="HxWx3"):
        p.set_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        p.set_image(np.zeros((10, 10, 3), np.float32))


def test_missing_backend_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from edge_sam_sdk import BackendNotAvailableError
    from edge_sam_sdk.runtimes import backend_class

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(BackendNotAvailableError, match=r"pip install 'edgesam\[onnx\]'"):
        backend_class("onnxruntime")
