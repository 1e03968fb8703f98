"""Is an ONNX graph ready for TensorRT 8.6 .. 10.x? Pure onnx-protobuf analysis, no TensorRT.

What the check covers (``check_model`` returns ``{ok, opset, trt_range, ops, problems,
shape_tensors, fp16_sensitive}``; every problem is ``{node, op, why, fix}``):

* **opset** within what both parsers import: TensorRT 8.6 reads opsets up to 17, 10.x reads
  9 to 20, so the range is 9..17.
* **ops** in the ONNX parser's support matrix of both versions (``onnx-tensorrt``
  ``docs/operators.md`` at tags ``8.6-GA`` and ``10.1-GA``; ``CastLike``, ``DeformConv``,
  ``Gelu``, ``Hardmax`` and ``Mish`` only from 10.x); custom domains (onnxruntime's
  ``com.microsoft`` fusions) are unknown to the parser.
* **restrictions** the parser enforces on inputs and attributes: constant ``axes``/``K``/
  ``depth`` inputs, Resize modes (nearest/linear/cubic, five coordinate transforms, no
  antialias, linear on the last 3 and cubic on the last 2 axes), Einsum without ellipsis or
  diagonal,
  sorted TopK, no Scatter reductions, LayerNormalization/MaxPool extra outputs unused.
* **data-dependent output shapes** (NonZero, NonMaxSuppression, Unique, Compress) and
  **OneHot** with a computed depth or on a shape tensor.
* **shape tensors** (the inputs of Reshape, Expand, Tile, Slice, ConstantOfShape, Resize
  sizes, Range, Pad, Squeeze/Unsqueeze axes, Split, TopK): constant ones are fine (int64
  constants are narrowed to Int32 by TensorRT 8.x; values beyond int32 are a problem);
  computed ones must be integer arithmetic over ``Shape``/``Size`` of tensors and constants
  -- TensorRT builds them as Int32 (8.x) or Int64 (10.x) shape tensors. A computed shape
  tensor that passes through floats, reads the *values* of a graph input or of a data
  tensor is a problem. The computed int64 ones are counted in ``shape_tensors``.
* **I/O types**: INT64 graph inputs/outputs need TensorRT 10, DOUBLE is not a TensorRT type.
* ``fp16_sensitive``: the nodes a reduced-precision engine keeps in fp32
  (:func:`fp32_node_names`); reported, not a problem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .readiness_rules import (
    ELEM,
    ELEMENTWISE,
    FP32_OPS,
    OPSET_MAX,
    OPSET_MIN,
    SHAPE_INPUTS,
    Graph,
    constant_range,
    fp16_unsafe,
    node_problems,
    op_key,
    problem,
    shape_tensor_problems,
)

TRT_RANGE = "8.6-10.x"


def check_model(model: Any) -> dict[str, Any]:
    """The TensorRT-readiness report of an ``onnx.ModelProto`` (see the module docstring).

    Returns ``{"ok": bool, "opset": int, "trt_range": "8.6-10.x", "ops": {op: count},
    "problems": [{"node", "op", "why", "fix"}], "shape_tensors": {"constant": n,
    "computed": n}, "fp16_sensitive": n}``; ``ok`` is ``not problems``.
    """
    g = Graph(model)
    problems: list[dict[str, str]] = []
    add = problems.append
    opset = g.opset
    if not OPSET_MIN <= opset <= OPSET_MAX:
        add(problem("<model>", "opset", f"opset {opset} is outside {OPSET_MIN}..{OPSET_MAX}, the range "
                     f"both TensorRT 8.6 (up to 17) and 10.x (9..20) import",
                     f"export with opset {OPSET_MAX} (exporters.targets.onnx.export.OPSET)"))
    for io, what in ((g.graph.input, "input"), (g.graph.output, "output")):
        for v in io:
            dtype = ELEM.get(v.type.tensor_type.elem_type, "?")
            if dtype == "int64":
                add(problem(v.name, what, f"graph {what} {v.name!r} is int64, which TensorRT 8.x "
                             "cannot bind", "use int32 or float32 for graph inputs and outputs"))
            elif dtype == "float64":
                add(problem(v.name, what, f"graph {what} {v.name!r} is float64, not a TensorRT type",
                             "use float32"))
    for node in g.nodes:
        problems.extend(node_problems(g, node))
    shape_counts = {"constant": 0, "computed": 0}
    for node in g.nodes:
        for i in SHAPE_INPUTS.get(node.op_type, ()):
            if i >= len(node.input) or not node.input[i]:
                continue
            name = node.input[i]
            if name in g.const:
                shape_counts["constant"] += 1
                problems.extend(constant_range(g, node, i))
                continue
            shape_counts["computed"] += 1
            problems.extend(shape_tensor_problems(g, node, name))
    return {"ok": not problems, "opset": opset, "trt_range": TRT_RANGE,
            "ops": dict(sorted(Counter(op_key(n) for n in g.nodes).items())),
            "problems": problems, "shape_tensors": shape_counts,
            "fp16_sensitive": len(_fp32_nodes(g))}


def check_file(path: str | Path) -> dict[str, Any]:
    """:func:`check_model` of an ``.onnx`` file (external data is not loaded)."""
    import onnx

    from edge_sam_sdk.errors import InputError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise InputError(f"ONNX file not found: {path}") from None
    except Exception as exc:  # protobuf DecodeError and friends
        raise InputError(f"cannot read {path} as an ONNX model: {exc}") from None
    return check_model(model)


def fp32_node_names(model: Any) -> list[str]:
    """Names of the nodes a fp16/int8 engine keeps in fp32, in graph order.

    Nodes of :data:`FP32_OPS` (LayerNorm, softmax, ReduceMean, Pow, Sqrt) and elementwise
    nodes with a scalar constant fp16 cannot hold (a nonzero ``|c| < 2**-14``, i.e. an epsilon
    such as EfficientViT's 1e-15, or ``|c| > 65504``), plus the direct consumers of the latter. The
    TensorRT ONNX parser names each layer after its node, so these names serve both the
    Python builder (layer precision) and ``trtexec --layerPrecisions``.
    """
    return _fp32_nodes(Graph(model))


def _fp32_nodes(g: Graph) -> list[str]:
    keep: list[str] = []
    risky: set[str] = set()
    for node in g.nodes:
        out_of_range = node.op_type in ELEMENTWISE and any(
            fp16_unsafe(g.values.get(i)) for i in node.input if i in g.const)
        if node.op_type in FP32_OPS or out_of_range or any(i in risky for i in node.input):
            if node.name:
                keep.append(node.name)
        if out_of_range:
            risky.update(node.output)
    return keep


def format_report(report: Mapping[str, Any], title: str = "") -> str:
    """Human-readable lines of one :func:`check_model` report."""
    head = f"{title}: " if title else ""
    st = report["shape_tensors"]
    lines = [f"{head}{'ready' if report['ok'] else 'NOT ready'} for TensorRT {report['trt_range']} "
             f"(opset {report['opset']}, {sum(report['ops'].values())} nodes, "
             f"{len(report['ops'])} op types, shape tensors: {st['constant']} constant, "
             f"{st['computed']} computed from input dims, {report['fp16_sensitive']} nodes kept "
             f"in fp32 for fp16/int8)"]
    for p in report["problems"]:
        lines.append(f"  - {p['op']} {p['node']}: {p['why']}; fix: {p['fix']}")
    return "\n".join(lines)


def problems_line(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """One line listing every problem of ``{graph: report}`` (for an error message)."""
    parts = [f"{graph} {p['op']} {p['node']}: {p['why']} (fix: {p['fix']})"
             for graph, r in reports.items() for p in r["problems"]]
    return "; ".join(parts)


def check_bundle_graphs(folder: str | Path, graphs: Mapping[str, Mapping[str, Any]], strict: bool = False,
                        say: Any = None) -> dict[str, Any]:
    """Check every graph file of a bundle; the summary goes into the manifest.

    ``graphs`` is the manifest's ``graphs`` entry. Returns ``{"ok", "trt_range", "problems":
    {graph: ["op node: why", ...]}}``. ``strict`` (``--tensorrt-ready``): print each report
    through ``say`` and raise ``EdgeSamError`` listing every problem when one is found.
    """
    from edge_sam_sdk.errors import EdgeSamError

    reports = {name: check_file(Path(folder) / g["file"]) for name, g in graphs.items()}
    ok = all(r["ok"] for r in reports.values())
    if strict and say:
        for name, r in reports.items():
            say(format_report(r, name))
    if strict and not ok:
        raise EdgeSamError(f"the graphs are not TensorRT-ready: {problems_line(reports)}")
    if not ok and say:
        say("note: the graphs are not TensorRT-ready (export with --tensorrt-ready for graphs that are, "
            "or see: edgesam trt-check BUNDLE)")
    return {"ok": ok, "trt_range": TRT_RANGE,
            "problems": {name: [f"{p['op']} {p['node']}: {p['why']}" for p in r["problems"]]
                         for name, r in reports.items() if r["problems"]}}
