"""Manifest fuzzing (hypothesis): every mutation is a one-line BundleError, or a manifest the
SDK then runs without any foreign exception.

Seeds are manifests every target wrote (``tests/manifests/*.json``: onnx fp32 and int8, tflite,
tensorrt fp16 and int8, coreml). A mutation deletes a key, empties or duplicates a list, or
replaces a value with a random JSON value (huge and non-finite numbers, NUL strings, nested
junk). A mutated manifest that the schema accepts is run through :class:`SamPredictor` with
stub graphs that return zeros of the declared shapes, with prompts and images drawn at random
too; only the SDK's own errors
(``EdgeSamError``) may escape. ``EDGESAM_FUZZ_EXAMPLES`` raises the example count (default
600 manifest mutations, about 15 s).
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sam_sdk.bundle import Bundle, read_manifest
from edge_sam_sdk.errors import BundleError, EdgeSamError
from edge_sam_sdk.manifest_schema import validate_manifest
from edge_sam_sdk.predictor import SamPredictor

MANIFESTS = Path(__file__).parent / "manifests"
SEEDS = {p.stem: json.loads(p.read_text()) for p in sorted(MANIFESTS.glob("*.json"))}
EXAMPLES = int(os.environ.get("EDGESAM_FUZZ_EXAMPLES", "600"))
#: Free-form evidence (parity figures, quality reports, trtexec arguments): not mutated.
_SKIP = {"export_parity", "fp32_export_parity", "quality", "calibration", "tensorrt_check", "trtexec",
         "op_precisions", "gflops", "layerPrecisions", "profile", "reduced"}
_FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class StubGraph:
    """A graph that returns zeros (and a little signal) of the manifest's declared shapes."""

    name = "stub"

    def __init__(self, entry: dict[str, Any]):
        self.inputs = [t["name"] for t in entry["inputs"]]
        self.outputs = [t["name"] for t in entry["outputs"]]
        self.shapes = {t["name"]: t["shape"] for t in entry["outputs"]}

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edge_sam_sdk.runtimes import check_feed

        check_feed(self, feed)
        batch = feed["point_coords"].shape[0] if "point_coords" in feed else 1
        out = {}
        for name, shape in self.shapes.items():
            dims = tuple(batch if d == "B" else d for d in shape)
            out[name] = np.linspace(-3, 3, math.prod(dims), dtype=np.float32).reshape(dims)
        return out


def stub_bundle(manifest: dict[str, Any]) -> Bundle:
    g = manifest["graphs"]
    return Bundle(manifest, StubGraph(g["encoder"]), StubGraph(g["decoder"]), None)


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20),
                        st.sampled_from([0, -1, 1, 2, 3, 6, 64, 256, 1024, 10**18, -(10**18)]),
                        st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e300, -1e-300]),
                        st.text(max_size=12), st.sampled_from(["", "\x00", "../x", "/etc/passwd", "B", "N",
                                                               "sam", "onnx", "fp16", "never", "stretch"]))
    def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3))

    return st.recursive(scalars, containers, max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            if k not in _SKIP:
                out += _paths(v, prefix + (k,))
    elif isinstance(node, list) and len(node) <= 64:
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def mutate(manifest: dict[str, Any], data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(_paths(manifest)))
    parent = manifest
    for p in path[:-1]:
        parent = parent[p]
    key = path[-1]
    op = data.draw(st.sampled_from(["delete", "replace", "replace", "replace", "empty", "scale", "dup"]))
    value = parent[key]
    if op == "delete":
        del parent[key]
    elif op == "empty" and isinstance(value, list | dict | str):
        parent[key] = type(value)()
    elif op == "scale" and isinstance(value, int | float) and not isinstance(value, bool):
        parent[key] = value * data.draw(st.sampled_from([-1, 0, 2, 10**18, 1e300, float("inf")]))
    elif op == "dup" and isinstance(value, list) and value:
        value.append(copy.deepcopy(value[0]))
    else:
        parent[key] = data.draw(json_values())


def exercise(manifest: dict[str, Any], data: st.DataObject | None = None) -> None:
    """Run a schema-valid manifest through the predictor with stub graphs."""
    predictor = SamPredictor(stub_bundle(manifest))
    h, w = (17, 29) if data is None else (data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40)))
    predictor.set_image(np.full((h, w, 3), 120, np.uint8))
    predictor.predict(point_coords=np.array([[3.0, 4.0]]), point_labels=np.array([1]))
    predictor.predict(box=np.array([1.0, 1.0, 6.0, 5.0]), multimask_output=False)
    predictor.predict_batch(boxes=np.array([[1.0, 1.0, 6.0, 5.0]] * 3))


def test_seed_manifests_validate_and_run() -> None:
    targets = {"onnx_mobile_sam", "onnx_mobile_sam_int8", "coreml_mobile_sam", "tensorrt_mobile_sam_int8",
               "tflite_mobile_sam"}
    assert targets <= set(SEEDS)
    for name, manifest in SEEDS.items():
        validate_manifest(manifest, name)
        exercise(manifest)


@_FUZZ
@given(data=st.data())
def test_mutated_manifests_fail_cleanly_or_work(data: st.DataObject) -> None:
    manifest = copy.deepcopy(SEEDS[data.draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(data.draw(st.integers(1, 3))):
        if not _paths(manifest):
            break
        mutate(manifest, data)
    try:
        validate_manifest(manifest)
    except BundleError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600
        return
    try:
        exercise(manifest, data)
    except EdgeSamError:
        pass


def _coords() -> st.SearchStrategy[Any]:
    num = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**40), 10**40),
                    st.sampled_from([1e39, -1e39, 5.0, 0.0, 1e300]))
    return st.one_of(st.none(), st.lists(st.lists(num, min_size=0, max_size=3), max_size=4),
                     st.lists(num, max_size=5), st.text(max_size=3), num)


@settings(max_examples=max(200, EXAMPLES // 3), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bad_prompts_and_images_fail_cleanly(data: st.DataObject) -> None:
    predictor = SamPredictor(stub_bundle(SEEDS[data.draw(st.sampled_from(["onnx_mobile_sam",
                                                                          "onnx_efficient_sam_vitt"]))]))
    shape = data.draw(st.sampled_from([(20, 30, 3), (0, 5, 3), (5, 5), (5, 5, 4), (1, 3000, 3), (2, 2, 3)]))
    dtype = data.draw(st.sampled_from([np.uint8, np.uint8, np.float32, np.int64, bool]))
    image: Any = data.draw(st.sampled_from([np.zeros(shape, dtype), None, [[1, 2]], "img"]))
    try:
        predictor.set_image(image, data.draw(st.sampled_from(["RGB", "BGR", "XYZ"])))
    except EdgeSamError:
        predictor.set_image(np.zeros((20, 30, 3), np.uint8))
    kwargs = {"point_coords": data.draw(_coords()), "point_labels": data.draw(_coords()),
              "box": data.draw(_coords()), "mask_input": data.draw(st.one_of(
                  st.none(), st.sampled_from([np.full((1, 256, 256), 1e300), np.zeros((1, 256, 256)),
                                              np.full((1, 256, 256), np.nan), np.zeros((1, 4, 4))]))),
              "multimask_output": data.draw(st.booleans()),
              "num_multimask_outputs": data.draw(st.one_of(st.none(), st.integers(-2, 6)))}
    try:
        masks, scores, _low = predictor.predict(**kwargs)
    except EdgeSamError:
        return
    assert np.isfinite(scores).all() and masks.shape[-2:] == predictor.original_size


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64), cut=st.integers(0, 7000))
def test_manifest_bytes_fail_cleanly(tmp_path: Path, raw: bytes, cut: int) -> None:
    text = json.dumps(SEEDS["onnx_mobile_sam"]).encode()
    (tmp_path / "manifest.json").write_bytes(text[:cut] + raw)
    with pytest.raises(BundleError) as exc:
        read_manifest(tmp_path)  # the graph files are absent: a valid manifest still fails later
        raise BundleError("parsed")
    assert "\n" not in str(exc.value)
