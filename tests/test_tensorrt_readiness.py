"""TensorRT readiness check (no TensorRT needed): every registered variant's graphs, hand-made
bad graphs (shape tensors, unsupported ops, opsets, Einsum, Resize and constant inputs), the
fp32-kept nodes, and ``edgesam trt-check``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import get_bundle, get_model, heavy
from edge_sam_sdk.graphs import graph_specs, sample_feed
from edge_sam_sdk.registry import get_variant, list_variants

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from edge_sam_sdk.exporters.targets.onnx.graph_constants import ORT_FUSIONS  # noqa: E402
from edge_sam_sdk.exporters.targets.onnx.nchwc import GELU_OPSET  # noqa: E402
from edge_sam_sdk.exporters.targets.tensorrt.readiness import (  # noqa: E402
    check_file,
    check_model,
    format_report,
    fp32_node_names,
)

SMALL = "mobile_sam"


def _all_variants() -> list[object]:
    return [pytest.param(v, marks=heavy(v), id=v) for v in list_variants()]


# ----------------------------------------------------------------- every variant's graphs


@pytest.mark.parametrize("variant", _all_variants())
def test_variant_graphs_are_tensorrt_ready(variant: str, onnx_bundles: dict, models: dict,
                                           tmp_path: Path) -> None:
    """Every registered variant's ONNX graphs pass the check, or what blocks them is an
    onnxruntime-only fusion or NCHWc rewrite (``exporters.targets.onnx.nchwc``: opset-20 ``Gelu``) that
    the TensorRT-ready export (which the tensorrt target uses) leaves out, which is then
    checked to pass."""
    bundle = get_bundle(onnx_bundles, variant)
    manifest = json.loads((bundle / "manifest.json").read_text())
    reports = {n: check_file(bundle / g["file"]) for n, g in manifest["graphs"].items()}
    recorded = manifest["tensorrt_check"]  # the export records the check in every ONNX manifest
    assert recorded["ok"] == all(r["ok"] for r in reports.values())
    assert set(recorded["problems"]) == {n for n, r in reports.items() if not r["ok"]}
    for name, report in reports.items():
        assert report["opset"] in (17, GELU_OPSET)
        if report["ok"]:
            continue
        assert all(p["op"].startswith("com.microsoft::") or p["op"] in ("opset", "Gelu")
                   for p in report["problems"]), format_report(report)
        from edge_sam_sdk.exporters.export import graph_modules
        from edge_sam_sdk.exporters.targets.onnx.export import export_onnx

        graph = graph_specs(get_variant(variant))[name]
        module = graph_modules(get_model(models, variant))[name]
        path = tmp_path / f"{name}.onnx"
        export_onnx(module, graph, sample_feed(graph), path, skipped_optimizers=ORT_FUSIONS,
                    nchwc_rewrites=False)
        fixed = check_file(path)
        assert fixed["ok"], format_report(fixed)


def test_efficientvit_epsilon_is_kept_in_fp32(onnx_bundles: dict) -> None:
    """EfficientViT's linear-attention eps (1e-15) is 0 in fp16, the cause of its reported
    fp16 failure: a reduced-precision engine keeps that Add and the Div using it in fp32."""
    bundle = get_bundle(onnx_bundles, "efficientvit_sam_l0")
    model = onnx.load(str(bundle / "encoder.onnx"))
    names = set(fp32_node_names(model))
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = onnx.numpy_helper.to_array(n.attribute[0].t)
    eps_adds = [n for n in model.graph.node if n.op_type == "Add"
                and any(i in consts and consts[i].size == 1 and 0 < abs(float(consts[i])) < 1e-10
                        for i in n.input)]
    assert eps_adds and all(n.name in names for n in eps_adds)
    divs = [n for n in model.graph.node if n.op_type == "Div"
            and any(i in {o for a in eps_adds for o in a.output} for i in n.input)]
    assert divs and all(n.name in names for n in divs)
    assert not any(n.op_type == "Conv" and n.name in names for n in model.graph.node)


# ----------------------------------------------------------------------- hand-made graphs


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None, opset: int = 17) -> object:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _x(name: str = "x", shape: tuple = ("B", 4), dtype: int = TensorProto.FLOAT) -> object:
    return helper.make_tensor_value_info(name, dtype, list(shape))


def _i64(name: str, values: list[int]) -> object:
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def _whys(report: dict) -> str:
    return " | ".join(f"{p['op']}: {p['why']}" for p in report["problems"])


def test_check_accepts_shape_arithmetic_from_input_dims() -> None:
    """Reshape to [B, -1] computed from Shape: the dynamic-batch pattern every exported
    decoder has; integer arithmetic over Shape is what TensorRT builds shape tensors from."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["b", "zero"], ["b1"]),
             helper.make_node("Concat", ["b1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")]
    inits = [_i64("zero", [0]), _i64("minus1", [-1])]
    report = check_model(_model(nodes, [_x()], [_x("y")], inits))
    assert report["ok"], _whys(report)
    assert report["shape_tensors"] == {"constant": 1, "computed": 1}  # Unsqueeze axes, Reshape shape


def test_check_finds_onehot_on_shape_tensor() -> None:
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
             helper.make_node("OneHot", ["n", "n", "vals"], ["y"], name="onehot")]
    inits = [helper.make_tensor("one", TensorProto.INT64, [], [1]),
             helper.make_tensor("vals", TensorProto.FLOAT, [2], [0.0, 1.0])]
    report = check_model(_model(nodes, [_x()], [_x("y", ("N",))], inits))
    assert not report["ok"]
    whys = _whys(report)
    assert "OneHot on a shape tensor" in whys and "'depth' is computed at run time" in whys


def test_check_finds_shape_from_input_values_and_data() -> None:
    """int64 shape tensors computed from values (of an input, of a data tensor), not dims."""
    nodes = [helper.make_node("Cast", ["sizes"], ["s64"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["x", "s64"], ["y"], name="from_input"),
             helper.make_node("ArgMax", ["x"], ["m"], keepdims=0, axis=1),
             helper.make_node("ReduceSum", ["m"], ["m64"], keepdims=0),
             helper.make_node("Unsqueeze", ["m64", "zero"], ["m1"]),
             helper.make_node("Expand", ["x", "m1"], ["z"], name="from_data")]
    inputs = [_x(), _x("sizes", (2,))]
    report = check_model(_model(nodes, inputs, [_x("y"), _x("z")], [_i64("zero", [0])]))
    whys = _whys(report)
    assert "values of graph input 'sizes'" in whys
    assert "depends on the data of ArgMax" in whys


def test_check_finds_float_shape_arithmetic() -> None:
    """half = floor(W / 2) computed in float: TensorRT shape tensors are integers."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["sf", "two"], ["h"]),
             helper.make_node("Floor", ["h"], ["hf"]),
             helper.make_node("Cast", ["hf"], ["h64"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["x", "h64"], ["y"], name="half")]
    inits = [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])]
    report = check_model(_model(nodes, [_x()], [_x("y")], inits))
    assert "computed in floating point" in _whys(report)


@pytest.mark.parametrize("op, domain, opset, expect", [
    ("BitShift", "", 17, "not in TensorRT's ONNX parser support matrix"),
    ("Unique", "", 17, "data-dependent output shape"),
    ("Mish", "", 18, "from TensorRT 10.0 on"),
    ("Attention", "com.microsoft", 17, "custom-domain op com.microsoft::Attention"),
], ids=["unsupported", "data-dependent", "trt10-only", "ort-contrib"])
def test_check_finds_unsupported_ops(op: str, domain: str, opset: int, expect: str) -> None:
    node = helper.make_node(op, ["x"], ["y"], name="n", domain=domain)
    model = _model([node], [_x()], [_x("y")], opset=opset)
    if domain:
        model.opset_import.append(helper.make_opsetid(domain, 1))
    report = check_model(model)
    assert not report["ok"] and expect in _whys(report)


@pytest.mark.parametrize("opset", [8, 18])
def test_check_finds_opset_out_of_range(opset: int) -> None:
    report = check_model(_model([helper.make_node("Relu", ["x"], ["y"])], [_x()], [_x("y")], opset=opset))
    assert [p["op"] for p in report["problems"]] == ["opset"]
    assert "outside 9..17" in report["problems"][0]["why"]


@pytest.mark.parametrize("equation, ok", [("bnhwc,hkc->bnhwk", True), ("ii->i", False),
                                          ("...ij,jk->...ik", False)])
def test_check_einsum(equation: str, ok: bool) -> None:
    """SAM ViT's relative-position einsum imports; diagonals and ellipses do not (8.6)."""
    node = helper.make_node("Einsum", ["x", "x"] if "," in equation else ["x"], ["y"], equation=equation)
    assert check_model(_model([node], [_x()], [_x("y")]))["ok"] == ok


def test_check_finds_resize_io_and_constant_input_problems() -> None:
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="rs", mode="cubic",
                              coordinate_transformation_mode="tf_crop_and_resize"),
             helper.make_node("Squeeze", ["y", "axes"], ["z"], name="sq")]
    inputs = [_x("x", (1, 3, 4, 4)), _x("axes", (1,), TensorProto.INT64)]
    inits = [helper.make_tensor("scales", TensorProto.FLOAT, [4], [2.0, 1.0, 2.0, 2.0])]
    report = check_model(_model(nodes, inputs, [_x("z", ("N",))], inits))
    whys = _whys(report)
    assert "graph input 'axes' is int64" in whys
    assert "tf_crop_and_resize" in whys and "cubic resize of more than the last 2 axes" in whys
    assert "input 'axes' is computed at run time" in whys


def test_fp32_nodes_are_norms_softmax_and_fp16_unsafe_constants() -> None:
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[1]),
             helper.make_node("Add", ["m", "eps"], ["d"], name="add_eps"),
             helper.make_node("Div", ["x", "d"], ["q"], name="div"),
             helper.make_node("Mul", ["q", "w"], ["r"], name="mul_weights"),
             helper.make_node("Softmax", ["r"], ["y"], name="softmax")]
    inits = [helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-15]),
             helper.make_tensor("w", TensorProto.FLOAT, [4], [1e-9, 1.0, 2.0, 3.0])]
    model = _model(nodes, [_x()], [_x("y")], inits)
    assert fp32_node_names(model) == ["mean", "add_eps", "div", "softmax"]
    assert check_model(model)["fp16_sensitive"] == 4


def test_trt_check_command(onnx_bundles: dict, tmp_path: Path) -> None:
    from edge_sam_sdk.cli import main

    bundle = get_bundle(onnx_bundles, SMALL)
    assert main(["trt-check", str(bundle), "--json", str(tmp_path / "r.json")]) == 0
    reports = json.loads((tmp_path / "r.json").read_text())
    assert set(reports) == {"encoder", "decoder"} and all(r["ok"] for r in reports.values())
    bad = _model([helper.make_node("BitShift", ["x", "x"], ["y"], direction="LEFT")],
                 [_x("x", (4,), TensorProto.UINT8)], [_x("y", (4,), TensorProto.UINT8)])
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    assert main(["trt-check", str(tmp_path / "bad.onnx")]) == 1


# ------------------------------------------------------------ TensorRT and a GPU present
