"""Reduced-precision ONNX graphs: fp16 conversion and int8 static QDQ quantization.

Both start from the fp32 graph the exporter wrote and checked, and keep its I/O names,
shapes and float32 dtypes, so bundles stay interchangeable for the predictor.

* **fp16** (:func:`to_fp16`): onnxruntime's ``convert_float_to_float16`` with float32 inputs
  and outputs (``keep_io_types``); the ops in :data:`FP16_KEEP_OPS` (normalisations, softmax,
  reductions, powers, roots, exponentials, sin/cos of the prompt encoding) stay float32, and
  so does every node whose output exceeds :data:`FP16_MAX_ABS` on the calibration images
  (overflow-prone for fp16, whose largest value is 65504).
* **int8** (:func:`.reduced_precision.to_int8`): onnxruntime ``quantize_static`` in QDQ
  format with per-channel symmetric int8 weights and per-tensor activations calibrated by
  min/max on the calibration images. Scheme ``u8s8`` (default) uses asymmetric uint8
  activations, what onnxruntime's x86 kernels (VNNI) run fastest; ``s8s8`` uses symmetric
  int8 activations with zero point 0, the QDQ form TensorRT's explicit quantization
  requires. Which Conv / Gemm / MatMul nodes are quantized is chosen by :mod:`.int8_select`
  (sensitivity-guided mixed precision).

Calibration feeds are ``{"image": 1x3xSxS float32}`` made by the variant's own
pre-processing. onnxruntime's quantization tools are imported only here.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.errors import EdgeSamError

PRECISIONS = ("fp32", "fp16", "int8")
INT8_SCHEMES = ("u8s8", "s8s8")
#: Op types that stay float32 in fp16 graphs (overflow or precision prone).
FP16_KEEP_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceL2", "Pow", "Sqrt",
                 "Reciprocal", "Exp", "Log", "Sin", "Cos", "Resize")
#: A node whose output exceeds this on the calibration images stays float32 in fp16 graphs.
FP16_MAX_ABS = 4096.0
#: Op types int8 may quantize (weights per channel; MatMul also between activations).
INT8_OPS = ("Conv", "Gemm", "MatMul")
Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class Int8Config:
    """Options of :func:`to_int8`.

    Attributes:
        scheme: ``"u8s8"`` (CPU) or ``"s8s8"`` (TensorRT-consumable, zero point 0).
        target: e2e mask IoU vs fp32 on the probe (calibration) images the selected int8
            encoder must keep (above the report's 0.95 bar, for held-out images).
        groups: number of equal-compute node groups the selection measures.
        nodes: quantize exactly these nodes (skips the selection; for A/B measurements).
    """

    scheme: str = "u8s8"
    target: float = 0.965
    groups: int = 8
    nodes: tuple[str, ...] | None = None

    @property
    def symmetric(self) -> bool:
        return self.scheme == "s8s8"


def check_request(precision: str, target: str, int8: Int8Config | None = None) -> None:
    """Raise a one-line ``EdgeSamError`` for a precision/target/scheme this SDK cannot make."""
    if precision not in PRECISIONS:
        raise EdgeSamError(f"unknown precision {precision!r}; supported: {', '.join(PRECISIONS)}")
    if precision != "fp32" and target != "onnx":
        raise EdgeSamError(f"precision {precision} is implemented for the onnx target only, not {target!r}")
    if precision == "int8":
        scheme = (int8 or Int8Config()).scheme
        if scheme not in INT8_SCHEMES:
            raise EdgeSamError(f"unknown int8 scheme {scheme!r}; supported: {', '.join(INT8_SCHEMES)}")
        try:
            import onnxruntime.quantization  # noqa: F401
        except ImportError:
            raise EdgeSamError("int8 export needs onnxruntime's quantization tools "
                               "(onnxruntime.quantization), which cannot be imported here; install "
                               "them with: pip install 'edgesam[export]'") from None
    if precision == "fp16":
        try:
            from onnxruntime.transformers import float16  # noqa: F401
        except ImportError:
            raise EdgeSamError("fp16 export needs onnxruntime.transformers.float16; "
                               "install it with: pip install 'edgesam[export]'") from None


def tensor_ranges(model_path: Path, feeds: Sequence[Feed], op_types: Sequence[str] | None = None,
                  cache: Path | None = None) -> dict[str, tuple[float, float]]:
    """Min/max of the float tensors around ``op_types`` nodes (all node outputs if None) over
    ``feeds``, one image at a time (memory stays at one inference).

    The graph is augmented with a ``ReduceMin``/``ReduceMax`` pair per tensor. With ``cache``
    the ranges are also written in onnxruntime's calibration-cache JSON, which :func:`quantize`
    reads instead of running the graph again.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    model = onnx.load(str(model_path))
    typed = onnx.shape_inference.infer_shapes(model)
    floats = {vi.name for vi in list(typed.graph.value_info) + list(typed.graph.input)
              + list(typed.graph.output) if vi.type.tensor_type.elem_type == TensorProto.FLOAT}
    consts = {i.name for i in model.graph.initializer}
    names: list[str] = []
    for node in model.graph.node:
        if op_types is None:
            tensors = list(node.output)
        elif node.op_type in op_types:
            tensors = list(node.input) + list(node.output)
        else:
            continue
        names += [t for t in tensors if t in floats and t not in consts and t not in names]
    outputs = _add_reductions(model, names)
    names = [names[int(o.split("_")[3])] for o in outputs[::2]]
    with tempfile.TemporaryDirectory(prefix="edgesam_ranges.") as tmp:
        path = Path(tmp) / "ranges.onnx"  # external data: graphs over 2 GiB (ViT-H) load too
        onnx.save_model(model, str(path), save_as_external_data=True, location="ranges.onnx.data")
        del model, typed
        opts = ort.SessionOptions()
        opts.enable_cpu_mem_arena = False
        # Priority-based order runs each reduction as soon as its tensor exists (the default
        # order ran them last and held every activation: 5+ GB for MobileSAM).
        opts.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        lo = np.full(len(names), np.inf)
        hi = np.full(len(names), -np.inf)
        for feed in feeds:
            values = np.array(session.run(outputs, feed), dtype=np.float64).reshape(-1, 2)
            lo, hi = np.minimum(lo, values[:, 0]), np.maximum(hi, values[:, 1])
        del session
    ranges = {t: (float(a), float(b)) for t, a, b in zip(names, lo, hi, strict=True)}
    if cache is not None:
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

        save_tensors_data(TensorsData(CalibrationMethod.MinMax, {
            t: (np.float32(a), np.float32(b)) for t, (a, b) in ranges.items()}), cache)
    return ranges


def _add_reductions(model: Any, names: list[str]) -> list[str]:
    """Append a ``ReduceMin``/``ReduceMax`` output pair per tensor of ``names``, each placed
    right after the node making its tensor; returns the new output names, pairwise."""
    from onnx import TensorProto, helper

    index = {t: i for i, t in enumerate(names)}
    outputs: list[str] = []
    graph = model.graph
    nodes = list(graph.node)
    del graph.node[:]

    def reduce(t: str) -> None:
        for op in ("ReduceMin", "ReduceMax"):
            out = f"__range_{index[t]}_{op}"
            graph.node.append(helper.make_node(op, [t], [out], keepdims=0, name=out))
            graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, []))
            outputs.append(out)

    for t in [i.name for i in graph.input if i.name in index]:
        reduce(t)
    for node in nodes:
        graph.node.append(node)
        for t in node.output:
            if t in index:
                reduce(t)
    return outputs


def quantize(src: Path, dst: Path, cache: Path, config: Int8Config, nodes: Sequence[str]) -> None:
    """Write the QDQ graph of ``src`` with ``nodes`` quantized (ranges from ``cache``)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # ORT's advice spam
    act = QuantType.QInt8 if config.symmetric else QuantType.QUInt8
    quantize_static(str(src), str(dst), None, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(INT8_OPS), nodes_to_quantize=list(nodes) or ["<none>"],
                    per_channel=True, activation_type=act, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache),
                    extra_options={"ActivationSymmetric": config.symmetric, "WeightSymmetric": True})


def to_fp16(src: Path, dst: Path, feeds: Sequence[Feed]) -> dict[str, Any]:
    """Convert ``src`` to fp16 (float32 I/O) into ``dst``; returns facts for the manifest."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    ranges = tensor_ranges(src, feeds) if feeds else {}
    model = onnx.load(str(src))
    big = {name for name, (lo, hi) in ranges.items() if max(abs(lo), abs(hi)) > FP16_MAX_ABS}
    # a big tensor stays float32 where it is made and where it is read: a consumer cast back
    # to float16 would overflow on its input (EdgeTAM with synthetic weights: a conv at 8e4)
    keep_nodes = [n.name for n in model.graph.node
                  if n.op_type not in FP16_KEEP_OPS and any(t in big for t in (*n.input, *n.output))]
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(FP16_KEEP_OPS),
                                         node_block_list=keep_nodes)
    _drop_duplicate_nodes(converted)
    _drop_round_trip_casts(converted)
    _sort_nodes(converted)
    onnx.checker.check_model(converted)
    onnx.save_model(converted, str(dst))
    return {"keep_fp32_ops": list(FP16_KEEP_OPS), "keep_fp32_above_abs": FP16_MAX_ABS,
            "keep_fp32_nodes": len(keep_nodes), "io": "float32"}


def _drop_duplicate_nodes(model: Any) -> None:
    """Remove exact duplicate nodes (the fp16 converter emits one Cast per consumer of a
    shared constant, all with the same name and output, which onnx rejects)."""
    seen: set[bytes] = set()
    keep = []
    for node in model.graph.node:
        key = node.SerializeToString()
        if key not in seen:
            seen.add(key)
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _drop_round_trip_casts(model: Any) -> None:
    """Join float32 -> float16 -> float32 Cast pairs (the converter routes every edge between
    float32 nodes, and from a float32 node to a graph output, through float16: a loss, and an
    overflow to inf for a tensor kept float32 because it exceeds float16's range). The Cast
    back becomes an Identity of the float32 tensor; the Cast down goes once unread."""
    import onnx
    from onnx import TensorProto

    graph = model.graph
    typed = onnx.shape_inference.infer_shapes(model).graph
    floats = {v.name for v in (*typed.value_info, *typed.input, *typed.output)
              if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    floats |= {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT}

    def cast_to(node: Any) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((int(a.i) for a in node.attribute if a.name == "to"), None)

    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        down = producer.get(node.input[0]) if cast_to(node) == TensorProto.FLOAT else None
        if down is not None and cast_to(down) == TensorProto.FLOAT16 and down.input[0] in floats:
            node.op_type, node.input[0] = "Identity", down.input[0]
            del node.attribute[:]
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    live = [n for n in graph.node if cast_to(n) != TensorProto.FLOAT16 or n.output[0] in read]
    del graph.node[:]
    graph.node.extend(live)


def _sort_nodes(model: Any) -> None:
    """Order nodes topologically, keeping the original order where it is valid (the fp16
    converter appends the input casts at the end)."""
    graph = model.graph
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in known for i in node.input):
                ordered.append(node)
                known.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise EdgeSamError(f"fp16 conversion left a cycle or a dangling input at {rest[0].name!r}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def copy_graph(src: Path, dst: Path) -> None:
    """Copy a graph file unchanged (a graph left at fp32 in a reduced bundle)."""
    shutil.copyfile(src, dst)
