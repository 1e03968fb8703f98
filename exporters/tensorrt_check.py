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

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

TRT_RANGE = "8.6-10.x"
OPSET_MIN, OPSET_MAX = 9, 17

#: ONNX ops the TensorRT ONNX parser imports in both 8.6 and 10.x (support matrices of
#: onnx-tensorrt at tags 8.6-GA and 10.1-GA).
PARSER_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather
GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
GridSample GroupNormalization HardSigmoid HardSwish Identity If ImageScaler InstanceNormalization
IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop
LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg
NonMaxSuppression NonZero Not OneHot Or PRelu Pad ParametricSoftplus Pow QuantizeLinear RNN
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
Relu Reshape Resize ReverseSequence RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND
Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
#: Imported from TensorRT 10.0 on only.
PARSER_OPS_10_ONLY = frozenset({"CastLike", "DeformConv", "Gelu", "Hardmax", "Mish"})
#: Output shape depends on input values: no static engine shape, no optimization profile.
DATA_DEPENDENT = frozenset({"NonZero", "NonMaxSuppression", "Unique", "Compress"})
#: onnxsim passes that fuse standard ops into onnxruntime ``com.microsoft`` ops; TensorRT-ready
#: exports skip them (see ``exporters.onnx_export.export_onnx(skipped_optimizers=...)``).
ORT_FUSIONS = ("fuse_attention", "fuse_gqa")

#: Inputs that TensorRT takes as shape tensors, by op.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "ConstantOfShape": (0,),
    "Resize": (3,), "Range": (0, 1, 2), "Pad": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
    "Split": (1,), "TopK": (1,), "OneHot": (1,),
}
#: Inputs the parser needs as build-time constants: ``(op, index) -> what``.
CONSTANT_INPUTS: dict[tuple[str, int], str] = {
    ("Slice", 3): "axes", ("Squeeze", 1): "axes", ("Unsqueeze", 1): "axes", ("Pad", 3): "axes",
    ("CumSum", 1): "axis", ("TopK", 1): "K", ("OneHot", 1): "depth", ("ReduceSum", 1): "axes",
    ("ReduceMean", 1): "axes", ("ReduceMax", 1): "axes", ("ReduceMin", 1): "axes",
    ("ReduceProd", 1): "axes", ("ReduceL1", 1): "axes", ("ReduceL2", 1): "axes",
    ("ReduceLogSum", 1): "axes", ("ReduceLogSumExp", 1): "axes", ("ReduceSumSquare", 1): "axes",
}
#: Ops that may appear in a shape computation (TensorRT has shape-tensor layers for them).
SHAPE_OPS = frozenset({
    "Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Add", "Sub", "Mul",
    "Div", "Mod", "Neg", "Abs", "Min", "Max", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
    "Not", "And", "Or", "Where", "Reshape", "Flatten", "Identity", "ConstantOfShape", "Range", "Expand",
    "ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin", "Floor", "Ceil", "Round", "Sqrt",
})
RESIZE_MODES = ("nearest", "linear", "cubic")
RESIZE_TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                     "align_corners")

#: Op types a reduced-precision engine keeps in fp32 (statistics and exponentials that
#: overflow fp16: LayerNorm's variance, softmax, mean of squares).
FP32_OPS = frozenset({"LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt"})
FP16_MIN_NORMAL, FP16_MAX = 2.0**-14, 65504.0

_ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Clip", "Where"})
_INT32_MAX = 2**31 - 1
_SMALL = 64  # elements: TensorRT shape tensors hold at most 64 values
_ELEM = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
         11: "float64", 16: "bfloat16"}
_FLOATS = {"float32", "float16", "float64", "bfloat16"}


def check_model(model: Any) -> dict[str, Any]:
    """The TensorRT-readiness report of an ``onnx.ModelProto`` (see the module docstring).

    Returns ``{"ok": bool, "opset": int, "trt_range": "8.6-10.x", "ops": {op: count},
    "problems": [{"node", "op", "why", "fix"}], "shape_tensors": {"constant": n,
    "computed": n}, "fp16_sensitive": n}``; ``ok`` is ``not problems``.
    """
    g = _Graph(model)
    problems: list[dict[str, str]] = []
    add = problems.append
    opset = g.opset
    if not OPSET_MIN <= opset <= OPSET_MAX:
        add(_problem("<model>", "opset", f"opset {opset} is outside {OPSET_MIN}..{OPSET_MAX}, the range "
                     f"both TensorRT 8.6 (up to 17) and 10.x (9..20) import",
                     f"export with opset {OPSET_MAX} (exporters.onnx_export.OPSET)"))
    for io, what in ((g.graph.input, "input"), (g.graph.output, "output")):
        for v in io:
            dtype = _ELEM.get(v.type.tensor_type.elem_type, "?")
            if dtype == "int64":
                add(_problem(v.name, what, f"graph {what} {v.name!r} is int64, which TensorRT 8.x "
                             "cannot bind", "use int32 or float32 for graph inputs and outputs"))
            elif dtype == "float64":
                add(_problem(v.name, what, f"graph {what} {v.name!r} is float64, not a TensorRT type",
                             "use float32"))
    for node in g.nodes:
        problems.extend(_node_problems(g, node))
    shape_counts = {"constant": 0, "computed": 0}
    for node in g.nodes:
        for i in SHAPE_INPUTS.get(node.op_type, ()):
            if i >= len(node.input) or not node.input[i]:
                continue
            name = node.input[i]
            if name in g.const:
                shape_counts["constant"] += 1
                problems.extend(_constant_range(g, node, i))
                continue
            shape_counts["computed"] += 1
            problems.extend(_shape_tensor_problems(g, node, name))
    return {"ok": not problems, "opset": opset, "trt_range": TRT_RANGE,
            "ops": dict(sorted(Counter(_op_key(n) for n in g.nodes).items())),
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
    return _fp32_nodes(_Graph(model))


def _fp32_nodes(g: _Graph) -> list[str]:
    keep: list[str] = []
    risky: set[str] = set()
    for node in g.nodes:
        out_of_range = node.op_type in _ELEMENTWISE and any(
            _fp16_unsafe(g.values.get(i)) for i in node.input if i in g.const)
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


# ------------------------------------------------------------------------------ internals


class _Graph:
    """The main graph with producers, constants (folded forward) and inferred dtypes."""

    def __init__(self, model: Any):
        import onnx

        self.model = model
        self.graph = model.graph
        self.nodes = list(model.graph.node)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.inputs = {i.name for i in model.graph.input}
        self.values: dict[str, np.ndarray | None] = {}
        for t in model.graph.initializer:  # only small ones are read: shape values and scalars
            self.values[t.name] = _to_array(t) if math.prod(t.dims) <= _SMALL else None
        self.inputs -= set(self.values)  # old exporters list initializers as inputs too
        self.const: set[str] = set(self.values)
        for node in self.nodes:
            if node.op_type == "Constant":
                self.values[node.output[0]] = constant_value(node)
                self.const.add(node.output[0])
            elif (not node.op_type.startswith("Random") and node.input
                  and all(i in self.const or not i for i in node.input)):
                self.const.update(o for o in node.output if o)  # folded at build time
        self.dtype: dict[str, str] = {}
        try:
            inferred = onnx.shape_inference.infer_shapes(_without_weights(model))
        except Exception:  # shape inference is best effort: types then come from the graph as saved
            inferred = model
        for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            self.dtype[v.name] = _ELEM.get(v.type.tensor_type.elem_type, "?")
        for t in model.graph.initializer:
            self.dtype[t.name] = _ELEM.get(t.data_type, "?")

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        import onnx

        for a in node.attribute:
            if a.name == name:
                value = onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default


def _without_weights(model: Any) -> Any:
    """A copy of ``model`` whose large initializers and Constant nodes are external-data stubs
    (same names, dtypes, dims): shape inference needs no weights, and serializing them would
    dominate its time."""
    import onnx

    def stub(t: Any, name: str) -> Any:
        if math.prod(t.dims) <= _SMALL:
            return t
        s = onnx.TensorProto(name=name, data_type=t.data_type, dims=t.dims,
                             data_location=onnx.TensorProto.EXTERNAL)
        s.external_data.add(key="location", value="stub")
        return s

    inits = [stub(t, t.name) for t in model.graph.initializer]
    nodes = []
    for n in model.graph.node:
        value = next((a.t for a in n.attribute if a.name == "value"), None)
        if n.op_type == "Constant" and value is not None and math.prod(value.dims) > _SMALL:
            inits.append(stub(value, n.output[0]))
        else:
            nodes.append(n)
    g = model.graph
    graph = onnx.helper.make_graph(nodes, g.name, g.input, g.output, inits, value_info=g.value_info)
    return onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)


def constant_value(node: Any) -> np.ndarray | None:
    """The value of a small ``Constant`` node (``value`` tensor or ``value_int(s)/float(s)``)."""
    import onnx

    for a in node.attribute:
        if a.name == "value":
            return _to_array(a.t) if math.prod(a.t.dims) <= _SMALL else None
        if a.name in ("value_int", "value_ints", "value_float", "value_floats"):
            return np.asarray(onnx.helper.get_attribute_value(a))
    return None


def _to_array(tensor: Any) -> np.ndarray | None:
    from onnx import numpy_helper

    if tensor.data_location == 1 or (not tensor.raw_data and tensor.external_data):
        return None  # external data not loaded
    try:
        return np.asarray(numpy_helper.to_array(tensor))
    except Exception:
        return None


def _problem(node: str, op: str, why: str, fix: str) -> dict[str, str]:
    return {"node": node, "op": op, "why": why, "fix": fix}


def _op_key(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _node_problems(g: _Graph, node: Any) -> Iterable[dict[str, str]]:
    op, name = node.op_type, node.name or node.output[0]
    if node.domain not in ("", "ai.onnx"):
        ort = node.domain == "com.microsoft"
        fusion = " (an onnxruntime contrib op, e.g. from onnxsim's fuse_attention)" if ort else ""
        fix = (f"export with --tensorrt-ready, which skips onnxsim's {'/'.join(ORT_FUSIONS)} fusions" if ort
               else "rewrite it with standard ONNX ops or add a TensorRT plugin")
        yield _problem(name, _op_key(node), f"custom-domain op {_op_key(node)}{fusion} is unknown to "
                       "TensorRT's ONNX parser", fix)
        return
    if op in PARSER_OPS_10_ONLY:
        yield _problem(name, op, f"{op} is imported from TensorRT 10.0 on, not by 8.6",
                       "decompose it into standard ops (or require TensorRT >= 10)")
    elif op not in PARSER_OPS:
        yield _problem(name, op, f"{op} is not in TensorRT's ONNX parser support matrix (8.6/10.x)",
                       "rewrite it with supported ops in the torch model")
    if op in DATA_DEPENDENT:
        yield _problem(name, op, f"{op} has a data-dependent output shape (no static profile)",
                       "use a fixed-size formulation (mask and Where) instead")
    for i, what in ((i, w) for (o, i), w in CONSTANT_INPUTS.items() if o == op):
        if i < len(node.input) and node.input[i] and node.input[i] not in g.const:
            yield _problem(name, op, f"input {what!r} is computed at run time; TensorRT needs a "
                           "build-time constant", f"make {what} a constant in the torch model")
    if op == "OneHot" and node.input and node.input[0] not in g.const and _reaches_shape(g, node.input[0]):
        yield _problem(name, op, "OneHot on a shape tensor (indices computed from tensor shapes)",
                       "compute the one-hot in the torch model from constants, or use Equal against "
                       "a constant Range")
    if op == "Resize":
        yield from _resize_problems(g, node, name)
    elif op == "Einsum":
        equation = str(g.attr(node, "equation", "")).replace(" ", "")
        terms = equation.split("->")[0].split(",")
        if "..." in equation or any(len(set(t)) < len(t) for t in terms):
            yield _problem(name, op, f"Einsum {equation!r} uses an ellipsis or a diagonal (a repeated "
                           "index), which TensorRT 8.6 does not import", "write it as MatMul/Transpose")
    elif op == "TopK" and g.attr(node, "sorted", 1) != 1:
        yield _problem(name, op, "TopK with sorted=0 is not supported", "use sorted=1")
    elif op in ("ScatterND", "ScatterElements") and g.attr(node, "reduction", "none") != "none":
        yield _problem(name, op, f"{op} with a reduction is not supported", "scatter without reduction")
    elif op in ("LayerNormalization", "MaxPool") and any(o for o in node.output[1:]):
        used = {i for n in g.nodes for i in n.input} | {o.name for o in g.graph.output}
        if any(o in used for o in node.output[1:]):
            yield _problem(name, op, f"only the first output of {op} is supported",
                           "do not use its mean/inv-std-dev or indices outputs")


def _resize_problems(g: _Graph, node: Any, name: str) -> Iterable[dict[str, str]]:
    mode = g.attr(node, "mode", "nearest")
    transform = g.attr(node, "coordinate_transformation_mode", "half_pixel")
    if mode not in RESIZE_MODES:
        yield _problem(name, "Resize", f"mode {mode!r} is not supported", f"use one of {RESIZE_MODES}")
    if transform not in RESIZE_TRANSFORMS:
        yield _problem(name, "Resize", f"coordinate_transformation_mode {transform!r} is not supported",
                       f"use one of {RESIZE_TRANSFORMS}")
    if g.attr(node, "antialias", 0):
        yield _problem(name, "Resize", "antialiased Resize is not supported",
                       "resize on the host (processing) or without antialias")
    if g.attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        yield _problem(name, "Resize", "keep_aspect_ratio_policy other than stretch is not supported",
                       "pass explicit sizes")
    scales = g.values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is not None and scales.size and mode in ("linear", "cubic"):
        axes = 3 if mode == "linear" else 2
        if np.any(scales[:-axes] != 1):
            yield _problem(name, "Resize", f"{mode} resize of more than the last {axes} axes",
                           "resize only the spatial axes")


def _constant_range(g: _Graph, node: Any, index: int) -> Iterable[dict[str, str]]:
    if node.op_type == "Slice" and index in (1, 2):
        return  # INT64_MAX/MIN as "to the end" are clamped harmlessly
    value = g.values.get(node.input[index])
    if value is not None and value.dtype.kind == "i" and value.size and np.abs(value).max() > _INT32_MAX:
        yield _problem(node.name or node.output[0], node.op_type,
                       f"shape constant {node.input[index]!r} exceeds int32; TensorRT 8.x clamps it",
                       "keep shape values within int32")


def _walk_shape(g: _Graph, start: str) -> tuple[set[str], list[str]]:
    """Tensors of the computation of ``start`` (stopping at constants and Shape/Size)."""
    seen: set[str] = set()
    stack, order = [start], []
    while stack:
        t = stack.pop()
        if t in seen or t in g.const or not t:
            continue
        seen.add(t)
        order.append(t)
        node = g.producer.get(t)
        if node is None or node.op_type in ("Shape", "Size") or node.op_type not in SHAPE_OPS:
            continue
        stack.extend(node.input)
    return seen, order


def _reaches_shape(g: _Graph, name: str) -> bool:
    seen, _ = _walk_shape(g, name)
    return any(g.producer.get(t) is not None and g.producer[t].op_type in ("Shape", "Size") for t in seen)


def _shape_tensor_problems(g: _Graph, node: Any, name: str) -> Iterable[dict[str, str]]:
    """Problems of one computed shape tensor ``name`` (an input of ``node``)."""
    _, order = _walk_shape(g, name)
    where = node.name or node.output[0]
    for t in order:
        producer = g.producer.get(t)
        if producer is None and t in g.inputs:
            yield _problem(where, node.op_type, f"shape input {name!r} is computed from the values of graph "
                           f"input {t!r}", "derive sizes from tensor shapes, not from input values")
            return
        if producer is not None and producer.op_type not in SHAPE_OPS:
            yield _problem(where, node.op_type, f"shape input {name!r} depends on the data of "
                           f"{producer.op_type} {producer.name!r} (a data-dependent shape)",
                           "make the size a function of input shapes only")
            return
    floats = [t for t in order if g.dtype.get(t) in _FLOATS and g.producer.get(t) is not None]
    if floats:
        yield _problem(where, node.op_type, f"shape input {name!r} is computed in floating point (via "
                       f"{floats[0]!r}); TensorRT shape tensors are Int32 (8.x) or Int64 (10.x)",
                       "compute sizes with integer ops (torch: // on ints), or fix the size")


def _fp16_unsafe(value: np.ndarray | None) -> bool:
    if value is None or value.dtype.kind != "f" or value.size != 1:
        return False
    a = np.abs(value.astype(np.float64))
    nonzero = a[a > 0]
    return bool(nonzero.size and (nonzero.min() < FP16_MIN_NORMAL or a.max() > FP16_MAX))
