"""Graph rewrites that keep onnxruntime's NCHWc convolution layout between convolutions.

With ``ORT_ENABLE_ALL`` onnxruntime runs convolutions in a blocked channel layout (NCHWc) and
keeps it through the operators its NCHWc transformer knows (convolutions, pools, same-shape
``Add``/``Mul``, ``Relu``/``Sigmoid``/``Tanh``/``Gelu``, nearest ``Resize``, ...). Any other
operator gets a ``ReorderOutput`` before it and a ``ReorderInput`` after it, two full passes
over the tensor. Both rewrites below compute the same values (``keep_nchwc`` runs both; the
ONNX target calls it on every graph except TensorRT-ready ones).

**Squeeze-excite gates** (RepViT in EdgeSAM): ``x * sigmoid(...)`` multiplies by a
``[N, C, 1, 1]`` gate. A broadcasting ``Mul`` is not kept in NCHWc, and because its output is
the residual stream, every later residual ``Add`` of the block chain ran in NCHW between
reorders too (118 reorders in EdgeSAM's encoder). ``gate_se_in_nchwc`` repeats the gate to
``[N, C, H, W]`` with a nearest ``Resize`` (exact copies), so the ``Mul`` has equal shapes and
the stream stays blocked.

**Tanh-approximate GELU** as one ONNX ``Gelu(approximate="tanh")`` node (opset 20).
EfficientViT-SAM computes ``nn.GELU(approximate="tanh")`` after most of its convolutions. The
TorchScript exporter (opset 17, our ``OPSET``) writes it as 9 element-wise nodes
(``efficientvit.TanhGelu``), which onnxruntime fuses into one ``FastGelu`` kernel. ``FastGelu``
is not among the operators onnxruntime's NCHWc layout transformer keeps in blocked layout, so
every one of them sits between a ``ReorderOutput`` and a ``ReorderInput`` (60 reorders, about
9 % of the L0 encoder's kernel time). The standard ``Gelu`` of opset 20 with
``approximate="tanh"`` is the same function (onnxruntime computes it bit for bit like
``FastGelu``) and stays in NCHWc.

``fuse_tanh_gelu`` finds that 9-node form and replaces it with ``Gelu``, converting the model
to opset 20 first; graphs without the form keep their opset (17).
"""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

from .graph_constants import constant_value

GELU_OPSET = 20
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _scalars(graph: Any) -> dict[str, float]:
    """One-element initializers and ``Constant`` nodes by name."""
    from onnx import numpy_helper

    out = {}
    for init in graph.initializer:
        if math.prod(init.dims) == 1:
            out[init.name] = float(numpy_helper.to_array(init).reshape(()))
    for node in graph.node:
        value = constant_value(node) if node.op_type == "Constant" else None
        if value is not None and value.size == 1:
            out[node.output[0]] = float(value.reshape(()))
    return out


class _Matcher:
    """The 9-node form ``x*0.5 * (1 + tanh(c*x * (0.044715*x*x + 1)))``, operands in any order."""

    def __init__(self, graph: Any) -> None:
        self.producer = {o: n for n in graph.node for o in n.output}
        self.uses: collections.Counter[str] = collections.Counter(i for n in graph.node for i in n.input)
        self.scalars = _scalars(graph)

    def _node(self, name: str, op: str) -> Any:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op and self.uses[name] == 1 else None

    def _with_scalar(self, node: Any, value: float) -> str | None:
        """The non-scalar input of a binary ``node`` whose other input is ``value``."""
        if node is None or len(node.input) != 2:
            return None
        for i in (0, 1):
            s = self.scalars.get(node.input[i])
            if s is not None and math.isclose(s, value, rel_tol=1e-6):
                return str(node.input[1 - i])
        return None

    @staticmethod
    def _orders(node: Any) -> list[tuple[str, str]]:
        """Both orders of a binary node's inputs (none for a missing node)."""
        if node is None or len(node.input) != 2:
            return []
        return [(node.input[0], node.input[1]), (node.input[1], node.input[0])]

    def match(self, out_mul: Any) -> tuple[str, list[Any]] | None:
        """``(x, nodes)`` if ``out_mul`` ends a tanh-GELU of ``x``, else None."""
        for a_name, u_name in self._orders(out_mul if out_mul.op_type == "Mul" else None):
            half = self._node(a_name, "Mul")
            x = self._with_scalar(half, 0.5)
            one_plus = self._node(u_name, "Add")
            t_name = self._with_scalar(one_plus, 1.0)
            tanh = self._node(t_name, "Tanh") if t_name else None
            inner = self._node(tanh.input[0], "Mul") if tanh is not None else None
            if x is None or inner is None:
                continue
            for b_name, f_name in self._orders(inner):
                scaled = self._node(b_name, "Mul")
                add = self._node(f_name, "Add")
                e = self._node(self._with_scalar(add, 1.0) or "", "Mul")
                if self._with_scalar(scaled, _SQRT_2_OVER_PI) != x or e is None:
                    continue
                for d_name, x2 in self._orders(e):
                    d = self._node(d_name, "Mul")
                    if x2 == x and self._with_scalar(d, 0.044715) == x:
                        return x, [out_mul, half, one_plus, tanh, inner, scaled, add, e, d]
        return None


def fuse_tanh_gelu(model: Any) -> tuple[Any, int]:
    """``(model, n)``: ``model`` with its ``n`` tanh-GELU forms as opset-20 ``Gelu`` nodes.

    Returns the input unchanged (``n == 0``) when it has no such form or cannot be converted.
    """
    from onnx import helper, version_converter

    if not any(n.op_type == "Tanh" for n in model.graph.node):
        return model, 0
    matcher = _Matcher(model.graph)
    if not any(matcher.match(n) for n in model.graph.node if n.op_type == "Mul"):
        return model, 0
    try:
        converted = version_converter.convert_version(model, GELU_OPSET)
    except Exception:  # an operator the converter cannot lift: keep the opset-17 graph
        return model, 0
    graph = converted.graph
    matcher = _Matcher(graph)
    found = [m for m in (matcher.match(n) for n in list(graph.node) if n.op_type == "Mul") if m]
    drop = {id(n) for _, nodes in found for n in nodes}
    gelus = {id(nodes[0]): helper.make_node("Gelu", [x], [nodes[0].output[0]], name=nodes[0].name + "_gelu",
                                            approximate="tanh") for x, nodes in found}
    kept = [gelus.get(id(n), n) for n in graph.node if id(n) not in drop or id(n) in gelus]
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    kept = [n for n in kept if n.op_type != "Constant" or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(kept)
    dead = [init for init in graph.initializer if init.name not in used]
    for init in dead:
        graph.initializer.remove(init)
    return converted, len(found)


def _static_shapes(model: Any) -> dict[str, list[int]]:
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [d.dim_value for d in dims]
    return shapes


def gate_se_in_nchwc(model: Any) -> tuple[Any, int]:
    """``(model, n)``: its ``n`` squeeze-excite gates ``x * sigmoid(g)`` (``g`` of shape
    ``[N, C, 1, 1]``, ``x`` static ``[N, C, H, W]``) multiplied at full size after a nearest
    ``Resize``. (The gate's pooled mean stays as exported: a ``GlobalAveragePool`` would sum
    all ``H*W`` values in one fp32 run, see ``rep_vit.SqueezeExcite``.)"""
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    shapes = _static_shapes(model)
    scales: dict[tuple[int, int], str] = {}
    repeated: set[str] = set()
    count, nodes = 0, []
    for node in graph.node:
        if node.op_type == "Mul" and len(node.input) == 2:
            for x, g in (node.input, node.input[::-1]):
                xs, gs = shapes.get(x, []), shapes.get(g, [])
                gate = producer.get(g)
                if (len(xs) == 4 and gs == [xs[0], xs[1], 1, 1] and xs[2] * xs[3] > 1
                        and gate is not None and gate.op_type == "Sigmoid"):
                    key = (xs[2], xs[3])
                    if key not in scales:
                        scales[key] = f"nchwc_gate_scales_{key[0]}x{key[1]}"
                        graph.initializer.append(numpy_helper.from_array(
                            np.array([1, 1, *key], np.float32), scales[key]))
                    full = g + "_full"
                    if full not in repeated:  # one Resize per gate, however many Muls use it
                        repeated.add(full)
                        nodes.append(helper.make_node(
                            "Resize", [g, "", scales[key]], [full], name=node.name + "_gate", mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
                    node = helper.make_node("Mul", [x, full], list(node.output), name=node.name)
                    count += 1
                    break
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model, count


def keep_nchwc(model: Any) -> tuple[Any, dict[str, int]]:
    """Both rewrites; returns the model and what changed (``{}`` when nothing did). The caller
    checks the result (``onnx_export.export_onnx`` runs the ONNX checker before saving)."""
    model, gates = gate_se_in_nchwc(model)
    model, gelus = fuse_tanh_gelu(model)
    facts = {"se_gates": gates, "tanh_gelu_ops": gelus}
    return model, {k: v for k, v in facts.items() if v}
