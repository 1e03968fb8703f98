"""The rules of the TensorRT readiness check: parser op tables, the graph view it walks, and the
per-node problems (op support, input/attribute restrictions, shape tensors, fp16 range).

:mod:`.readiness` runs them over a model and reports; see its docstring for what is covered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..onnx.graph_constants import ORT_FUSIONS, SMALL, constant_value, to_array

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

ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Clip", "Where"})
INT32_MAX = 2**31 - 1
ELEM = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
         11: "float64", 16: "bfloat16"}
FLOATS = {"float32", "float16", "float64", "bfloat16"}


class Graph:
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
            self.values[t.name] = to_array(t) if math.prod(t.dims) <= SMALL else None
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
            inferred = onnx.shape_inference.infer_shapes(without_weights(model))
        except Exception:  # shape inference is best effort: types then come from the graph as saved
            inferred = model
        for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            self.dtype[v.name] = ELEM.get(v.type.tensor_type.elem_type, "?")
        for t in model.graph.initializer:
            self.dtype[t.name] = ELEM.get(t.data_type, "?")

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        import onnx

        for a in node.attribute:
            if a.name == name:
                value = onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default


def without_weights(model: Any) -> Any:
    """A copy of ``model`` whose large initializers and Constant nodes are external-data stubs
    (same names, dtypes, dims): shape inference needs no weights, and serializing them would
    dominate its time."""
    import onnx

    def stub(t: Any, name: str) -> Any:
        if math.prod(t.dims) <= SMALL:
            return t
        s = onnx.TensorProto(name=name, data_type=t.data_type, dims=t.dims,
                             data_location=onnx.TensorProto.EXTERNAL)
        s.external_data.add(key="location", value="stub")
        return s

    inits = [stub(t, t.name) for t in model.graph.initializer]
    nodes = []
    for n in model.graph.node:
        value = next((a.t for a in n.attribute if a.name == "value"), None)
        if n.op_type == "Constant" and value is not None and math.prod(value.dims) > SMALL:
            inits.append(stub(value, n.output[0]))
        else:
            nodes.append(n)
    g = model.graph
    graph = onnx.helper.make_graph(nodes, g.name, g.input, g.output, inits, value_info=g.value_info)
    return onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)


def problem(node: str, op: str, why: str, fix: str) -> dict[str, str]:
    return {"node": node, "op": op, "why": why, "fix": fix}


def op_key(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def node_problems(g: Graph, node: Any) -> Iterable[dict[str, str]]:
    op, name = node.op_type, node.name or node.output[0]
    if node.domain not in ("", "ai.onnx"):
        ort = node.domain == "com.microsoft"
        fusion = " (an onnxruntime contrib op, e.g. from onnxsim's fuse_attention)" if ort else ""
        fix = (f"export with --tensorrt-ready, which skips onnxsim's {'/'.join(ORT_FUSIONS)} fusions" if ort
               else "rewrite it with standard ONNX ops or add a TensorRT plugin")
        yield problem(name, op_key(node), f"custom-domain op {op_key(node)}{fusion} is unknown to "
                       "TensorRT's ONNX parser", fix)
        return
    if op in PARSER_OPS_10_ONLY:
        yield problem(name, op, f"{op} is imported from TensorRT 10.0 on, not by 8.6",
                       "decompose it into standard ops (or require TensorRT >= 10)")
    elif op not in PARSER_OPS:
        yield problem(name, op, f"{op} is not in TensorRT's ONNX parser support matrix (8.6/10.x)",
                       "rewrite it with supported ops in the torch model")
    if op in DATA_DEPENDENT:
        yield problem(name, op, f"{op} has a data-dependent output shape (no static profile)",
                       "use a fixed-size formulation (mask and Where) instead")
    for i, what in ((i, w) for (o, i), w in CONSTANT_INPUTS.items() if o == op):
        if i < len(node.input) and node.input[i] and node.input[i] not in g.const:
            yield problem(name, op, f"input {what!r} is computed at run time; TensorRT needs a "
                           "build-time constant", f"make {what} a constant in the torch model")
    if op == "OneHot" and node.input and node.input[0] not in g.const and _reaches_shape(g, node.input[0]):
        yield problem(name, op, "OneHot on a shape tensor (indices computed from tensor shapes)",
                       "compute the one-hot in the torch model from constants, or use Equal against "
                       "a constant Range")
    if op == "Resize":
        yield from _resize_problems(g, node, name)
    elif op == "Einsum":
        equation = str(g.attr(node, "equation", "")).replace(" ", "")
        terms = equation.split("->")[0].split(",")
        if "..." in equation or any(len(set(t)) < len(t) for t in terms):
            yield problem(name, op, f"Einsum {equation!r} uses an ellipsis or a diagonal (a repeated "
                           "index), which TensorRT 8.6 does not import", "write it as MatMul/Transpose")
    elif op == "TopK" and g.attr(node, "sorted", 1) != 1:
        yield problem(name, op, "TopK with sorted=0 is not supported", "use sorted=1")
    elif op in ("ScatterND", "ScatterElements") and g.attr(node, "reduction", "none") != "none":
        yield problem(name, op, f"{op} with a reduction is not supported", "scatter without reduction")
    elif op in ("LayerNormalization", "MaxPool") and any(o for o in node.output[1:]):
        used = {i for n in g.nodes for i in n.input} | {o.name for o in g.graph.output}
        if any(o in used for o in node.output[1:]):
            yield problem(name, op, f"only the first output of {op} is supported",
                           "do not use its mean/inv-std-dev or indices outputs")


def _resize_problems(g: Graph, node: Any, name: str) -> Iterable[dict[str, str]]:
    mode = g.attr(node, "mode", "nearest")
    transform = g.attr(node, "coordinate_transformation_mode", "half_pixel")
    if mode not in RESIZE_MODES:
        yield problem(name, "Resize", f"mode {mode!r} is not supported", f"use one of {RESIZE_MODES}")
    if transform not in RESIZE_TRANSFORMS:
        yield problem(name, "Resize", f"coordinate_transformation_mode {transform!r} is not supported",
                       f"use one of {RESIZE_TRANSFORMS}")
    if g.attr(node, "antialias", 0):
        yield problem(name, "Resize", "antialiased Resize is not supported",
                       "resize on the host (processing) or without antialias")
    if g.attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        yield problem(name, "Resize", "keep_aspect_ratio_policy other than stretch is not supported",
                       "pass explicit sizes")
    scales = g.values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is not None and scales.size and mode in ("linear", "cubic"):
        axes = 3 if mode == "linear" else 2
        if np.any(scales[:-axes] != 1):
            yield problem(name, "Resize", f"{mode} resize of more than the last {axes} axes",
                           "resize only the spatial axes")


def constant_range(g: Graph, node: Any, index: int) -> Iterable[dict[str, str]]:
    if node.op_type == "Slice" and index in (1, 2):
        return  # INT64_MAX/MIN as "to the end" are clamped harmlessly
    value = g.values.get(node.input[index])
    if value is not None and value.dtype.kind == "i" and value.size and np.abs(value).max() > INT32_MAX:
        yield problem(node.name or node.output[0], node.op_type,
                       f"shape constant {node.input[index]!r} exceeds int32; TensorRT 8.x clamps it",
                       "keep shape values within int32")


def _walk_shape(g: Graph, start: str) -> tuple[set[str], list[str]]:
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


def _reaches_shape(g: Graph, name: str) -> bool:
    seen, _ = _walk_shape(g, name)
    return any(g.producer.get(t) is not None and g.producer[t].op_type in ("Shape", "Size") for t in seen)


def shape_tensor_problems(g: Graph, node: Any, name: str) -> Iterable[dict[str, str]]:
    """Problems of one computed shape tensor ``name`` (an input of ``node``)."""
    _, order = _walk_shape(g, name)
    where = node.name or node.output[0]
    for t in order:
        producer = g.producer.get(t)
        if producer is None and t in g.inputs:
            yield problem(where, node.op_type, f"shape input {name!r} is computed from the values of graph "
                           f"input {t!r}", "derive sizes from tensor shapes, not from input values")
            return
        if producer is not None and producer.op_type not in SHAPE_OPS:
            yield problem(where, node.op_type, f"shape input {name!r} depends on the data of "
                           f"{producer.op_type} {producer.name!r} (a data-dependent shape)",
                           "make the size a function of input shapes only")
            return
    floats = [t for t in order if g.dtype.get(t) in FLOATS and g.producer.get(t) is not None]
    if floats:
        yield problem(where, node.op_type, f"shape input {name!r} is computed in floating point (via "
                       f"{floats[0]!r}); TensorRT shape tensors are Int32 (8.x) or Int64 (10.x)",
                       "compute sizes with integer ops (torch: // on ints), or fix the size")


def fp16_unsafe(value: np.ndarray | None) -> bool:
    if value is None or value.dtype.kind != "f" or value.size != 1:
        return False
    a = np.abs(value.astype(np.float64))
    nonzero = a[a > 0]
    return bool(nonzero.size and (nonzero.min() < FP16_MIN_NORMAL or a.max() > FP16_MAX))
