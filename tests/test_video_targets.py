"""Video-tracking graphs on the Core ML and TensorRT targets (docs/video.md#core-ml-and-tensorrt).

Default (a few seconds, no model): the Core ML video exporter on a toy graph with the video
graphs' two converter gaps (an ``aten.alias`` from a full-range slice, an int64 index input)
and a size-1 dynamic axis, the read-back check, the refusals, and the TensorRT int32-input
rewrite. Slow (``EDGESAM_VIDEO_ALL=1``): all four graphs of ``sam2_1_hiera_tiny`` and
``edgetam`` converted to Core ML and read back, and their ONNX graphs' TensorRT readiness.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coremltools", reason="the coreml extra is not installed: pip install 'edgesam[coreml]'")

from edge_sam_sdk.errors import BackendNotAvailableError, BundleError, EdgeSamError, InputError  # noqa: E402
from edge_sam_sdk.exporters.targets.coreml import export as cx  # noqa: E402
from edge_sam_sdk.exporters.targets.coreml import video as cv  # noqa: E402
from edge_sam_sdk.exporters.targets.coreml.lowering import export_program  # noqa: E402
from edge_sam_sdk.exporters.targets.tensorrt import video as tv  # noqa: E402
from edge_sam_sdk.exporters.targets.tensorrt.readiness import check_file, check_model  # noqa: E402
from edge_sam_sdk.graphs import GraphSpec, TensorSpec  # noqa: E402
from edge_sam_sdk.video.engine import GRAPHS  # noqa: E402

VIDEO_ALL = bool(os.environ.get("EDGESAM_VIDEO_ALL"))
#: Converting/exporting the 2 x 4 real graphs takes ~3 min on 2 cores (model builds, torch.export,
#: the lowered program's check, ct.convert; ONNX export + onnxsim): beyond the default CI budget.
SLOW = [pytest.mark.slow, pytest.mark.skipif(not VIDEO_ALL, reason="converts the 8 real video graphs "
                                             "(~3 min on 2 cores); opt in with EDGESAM_VIDEO_ALL=1")]
VARIANTS = ("sam2_1_hiera_tiny", "edgetam")
S, P = 8, 17  # max_cond 2: S = max_cond + 6, P = max_cond + 15


class Toy(torch.nn.Module):
    """``x`` ``Bx3x4`` and ``tpos`` ``3`` int64 -> ``y``: a full-range slice (``aten.alias``
    after decomposition) and an embedding lookup by an int64 input, as the memory attention."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 4)
        self.table = torch.nn.Parameter(torch.randn(7, 4))

    def forward(self, x: torch.Tensor, tpos: torch.Tensor) -> torch.Tensor:
        k = self.lin(x)
        k = k[:, :k.shape[1] - 0]
        return k + self.table[tpos].unsqueeze(0)


TOY = GraphSpec("toy", (TensorSpec("x", ("B", 3, 4)), TensorSpec("tpos", (3,), "int64")),
                (TensorSpec("y", ("B", 3, 4)),))


def _toy_feed() -> dict[str, np.ndarray]:
    return {"x": np.linspace(-1, 1, 12, dtype=np.float32).reshape(1, 3, 4),
            "tpos": np.array([6, 0, 3], np.int64)}


def test_toy_converts_with_int32_tpos(tmp_path: Path) -> None:
    feed = _toy_feed()
    program = export_program(Toy(), TOY, cv.trace_feed(TOY, feed), {"B": (1, 64)})
    assert not [n for n in program.graph.nodes if "alias" in str(n.target)]
    assert cv.trace_feed(TOY, feed)["x"].shape == (2, 3, 4)  # B of 1 traced as 2, then Dim(1, 64)
    facts = cv.export_video_graph(Toy(), TOY, feed, tmp_path / f"toy{cv.SUFFIX}", "fp16")
    assert facts["feed_dtypes"] == {"x": "float32", "tpos": "int32"}
    assert facts["coreml"]["input_dtypes"] == {"x": "float32", "tpos": "int32"}
    assert facts["coreml"]["shape_ranges"] == {"B": [1, 64]}
    assert facts["lowered_program_parity"]["ok"]
    saved = cx.read_package(tmp_path / "toy.mlpackage")
    assert [f["ranges"] for f in saved["inputs"]] == [[[1, 64], [3, 3], [4, 4]], [[3, 3]]]
    assert saved["metadata"]["edgesam.graph"] == "toy"
    wrong = dataclasses.replace(TOY, inputs=(TensorSpec("x", ("B", 3, 5)), TensorSpec("tpos", (3,))),
                                outputs=(TensorSpec("logits", ("B", 3, 4)),))
    problems = cx.check_package(saved, wrong, cx.coreml_options("fp32"))
    assert any("x has sizes" in p for p in problems)
    assert any("tpos has dtype int32, expected float32" in p for p in problems)
    assert any("output names ['y'] != ['logits']" in p for p in problems)


def test_check_refuses_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cv.PRECISIONS == ("fp32", "fp16") and cv.RUNTIME == "coreml" and cv.SUFFIX == ".mlpackage"
    with pytest.raises(EdgeSamError, match="precision 'int8' is not supported for coreml"):
        cv.check("int8")
    monkeypatch.setattr(cx, "require_coremltools", _missing)
    with pytest.raises(BackendNotAvailableError, match=r"pip install 'edgesam\[coreml\]'"):
        cv.check("fp32")
    with pytest.raises(BackendNotAvailableError):
        cv.export_video_graph(Toy(), TOY, _toy_feed(), tmp_path / "toy.mlpackage")
    assert not (tmp_path / "toy.mlpackage").exists()


def _missing() -> None:
    raise BackendNotAvailableError("the coreml target needs the package 'coremltools', which is not "
                                   "installed; install it with: pip install 'edgesam[coreml]'")


def test_int32_inputs_rewrite_is_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    table = helper.make_tensor("table", TensorProto.FLOAT, (7, 2), np.arange(14, dtype=np.float32))
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "tpos"], ["y"], name="lookup")], "g",
        [helper.make_tensor_value_info("tpos", TensorProto.INT64, (3,))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (3, 2))], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = check_model(model)
    assert [p["node"] for p in before["problems"]] == ["tpos"]
    tpos = np.array([6, 0, 3], np.int64)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"tpos": tpos})[0]
    onnx.save(model, str(tmp_path / "memory_attention.onnx"))
    rewritten = tv.with_int32_inputs(model)
    onnx.checker.check_model(rewritten)
    assert check_model(rewritten)["ok"]
    got = ort.InferenceSession(rewritten.SerializeToString()).run(None, {"tpos": tpos.astype(np.int32)})[0]
    np.testing.assert_array_equal(got, ref)
    reports = tv.check_video_bundle(tmp_path)  # no manifest: the <graph>.onnx files present
    assert list(reports) == ["memory_attention"]
    assert not reports["memory_attention"]["ok"] and reports["memory_attention"]["int32_inputs"]["ok"]
    assert tv.summary(reports)["int32_inputs_ok"] and not tv.summary(reports)["ok"]
    with pytest.raises(InputError, match="no video graphs"):
        tv.check_video_bundle(tmp_path / "empty")
    from edge_sam_sdk.cli import main

    for name in GRAPHS[:3]:  # a whole bundle: the others hold the rewritten (ready) toy graph
        if name != "memory_attention":
            onnx.save(model, str(tmp_path / f"{name}.onnx"))
    manifest = {"kind": "video", "video_format_version": 1, "target": "onnx",
                "graphs": {n: {"file": f"{n}.onnx"} for n in GRAPHS[:3]}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="graphs missing"):  # the video reader checks the manifest
        tv.check_video_bundle(tmp_path)
    onnx.save(model, str(tmp_path / f"{GRAPHS[3]}.onnx"))
    manifest["graphs"][GRAPHS[3]] = {"file": f"{GRAPHS[3]}.onnx"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["trt-check", str(tmp_path)]) == 1  # edgesam trt-check VIDEO_BUNDLE
    out = capsys.readouterr().out
    assert out.count("with int32 graph inputs (exporters.targets.tensorrt.video.with_int32_inputs): "
                     "ready") == 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest | {"target": "tflite"}))
    with pytest.raises(InputError, match="--target onnx"):
        tv.check_video_bundle(tmp_path)


@pytest.fixture(scope="module")
def video_models() -> dict[str, Any]:
    return {}


def _video(cache: dict[str, Any], variant: str) -> tuple[dict[str, Any], dict[str, GraphSpec]]:
    """The variant's four torch graphs and specs (EdgeTAM's ``Sx512x64`` slots by hand until
    ``video_graph_specs`` says so)."""
    if variant not in cache:
        from edge_sam_sdk.exporters.checkpoint import load_model
        from edge_sam_sdk.graphs import video_graph_specs
        from edge_sam_sdk.registry import get_variant

        spec = get_variant(variant)
        model = load_model(spec, "synthetic:0")
        video = getattr(spec, "video", None)
        if video is not None:
            modules = video.build_graphs(model)
        else:
            from edge_sam_sdk.exporters.models.sam2_video import video_graphs

            modules = video_graphs(model)
        specs = video_graph_specs(spec, S, P)
        if variant == "edgetam" and specs["memory_attention"].inputs[1].shape != (S, 512, 64):
            att, enc = specs["memory_attention"], specs["memory_encoder"]
            specs["memory_attention"] = dataclasses.replace(att, inputs=(
                att.inputs[0], TensorSpec("memory_features", (S, 512, 64))) + att.inputs[2:])
            specs["memory_encoder"] = dataclasses.replace(
                enc, outputs=(TensorSpec("maskmem_features", (1, 512, 64)),))
        cache[variant] = modules, specs
    return cache[variant]


def _feed(name: str, spec: GraphSpec) -> dict[str, np.ndarray]:
    from edge_sam_sdk.testing import synthetic_array
    from edge_sam_sdk.video.export import video_feed

    feed = video_feed(name, spec)
    if name == "memory_attention":
        feed["memory_features"] = synthetic_array(0xF5, spec.inputs[1].shape, 0, -1.0, 1.0)  # type: ignore[arg-type]
    return feed


GRAPH_PARAMS = [pytest.param(v, g, marks=SLOW, id=f"{v}-{g}") for v in VARIANTS for g in tv.GRAPHS]


@pytest.mark.parametrize("variant, name", GRAPH_PARAMS)
def test_video_graph_converts_to_coreml(video_models: dict, tmp_path: Path, variant: str, name: str) -> None:
    modules, specs = _video(video_models, variant)
    spec = specs[name]
    path = tmp_path / f"{name}{cv.SUFFIX}"
    facts = cv.export_video_graph(modules[name], spec, _feed(name, spec), path, "fp32")
    saved = cx.read_package(path)
    assert [f["name"] for f in saved["inputs"]] == spec.input_names
    assert [f["name"] for f in saved["outputs"]] == spec.output_names
    ranges = {f["name"]: f["ranges"] for f in saved["inputs"]}
    for t in spec.inputs:
        want = [[1, 64] if d == "B" else [1, 16] if d == "N" else [d, d] for d in t.shape]
        assert ranges[t.name] == want, t.name
    dtypes = {f["name"]: f["dtype"] for f in saved["inputs"]}
    assert dtypes == facts["feed_dtypes"]
    if name == "memory_attention":
        assert dtypes["memory_tpos"] == "int32"
    assert {f["dtype"] for f in saved["outputs"]} == {"float32"}
    assert facts["lowered_program_parity"]["ok"]
    print(name, variant, facts["coreml"]["export_check_s"], facts["coreml"]["convert_s"])


@pytest.mark.parametrize("variant, name", GRAPH_PARAMS)
def test_video_graph_tensorrt_readiness(video_models: dict, tmp_path: Path, variant: str, name: str) -> None:
    from edge_sam_sdk.exporters.targets.onnx.export import export_onnx

    modules, specs = _video(video_models, variant)
    path = tmp_path / f"{name}.onnx"
    export_onnx(modules[name], specs[name], _feed(name, specs[name]), path)
    report = check_file(path)
    problems = [(p["op"], p["node"]) for p in report["problems"]]
    assert problems == ([("input", "memory_tpos")] if name == "memory_attention" else []), problems
    reports = tv.check_video_bundle(tmp_path)
    assert reports[name]["ok"] == report["ok"]
    assert reports[name].get("int32_inputs", report)["ok"]
