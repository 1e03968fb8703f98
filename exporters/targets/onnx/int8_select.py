"""Sensitivity-guided mixed precision: which Conv/Gemm/MatMul nodes an int8 graph quantizes.

Quantizing every candidate node of an encoder compounds the 8-bit activation noise of ~100
tensors. How much of it a model tolerates depends on its weights: a trained checkpoint
usually tolerates most, the project's synthetic weights (random, untrained) much less. So
the selection is measured, per export, on the checkpoint being exported:

1. the candidate nodes (:data:`~.precision.INT8_OPS`), in graph order, are cut into about
   ``config.groups`` groups of consecutive nodes of one class (convolutions; linear layers
   and attention products) and about equal compute (multiply-adds, from the graph's static
   shapes);
2. each group alone is quantized (ranges from the shared calibration cache) and run on the
   probe input, a calibration image: its sensitivity ``e_g`` is the relative L2 error of the
   encoder outputs against fp32;
3. groups are ranked by compute per squared error, and the longest prefix of that ranking
   whose int8 encoder keeps the end-to-end mask IoU vs fp32 on the probe images at or above
   ``config.target`` is quantized (found by bisection: about log2(groups) more probes).

The result (and every group's figures) goes into the manifest. A selection can also be
fixed (``config.nodes``), e.g. to compare the same graph with and without the bimodal fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .quantization import INT8_OPS, Feed, Int8Config, quantize


def node_macs(model: Any) -> list[tuple[str, float]]:
    """``(node name, multiply-adds)`` of every candidate node in graph order (0 if unknown)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    out = []
    for node in model.graph.node:
        if node.op_type not in INT8_OPS:
            continue
        y = shapes.get(node.output[0], [])
        w = shapes.get(node.input[1], [])
        if node.op_type == "Conv" and len(w) == 4:
            k = w[1] * w[2] * w[3]
        elif node.op_type == "Gemm" and len(w) == 2:
            trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
            k = w[1] if trans_b else w[0]
        else:  # MatMul: reduction over A's last axis
            a = shapes.get(node.input[0], [])
            k = a[-1] if a else 0
        macs = float(np.prod(y)) * k if y and all(d > 0 for d in y) else 0.0
        out.append((node.name, macs))
    return out


#: Node classes grouped separately: convolutions (image-like, often the most sensitive
#: high-resolution stem) and linear layers / attention products.
CLASSES = (("Conv",), ("Gemm", "MatMul"))


def make_groups(macs: list[tuple[str, float]], op_of: dict[str, str], n: int) -> list[list[str]]:
    """Groups of consecutive same-class nodes of about equal multiply-adds.

    Each class of :data:`CLASSES` gets ``max(1, round(n * its share of compute))`` groups.
    """
    total = sum(m for _, m in macs) or 1.0
    out: list[list[str]] = []
    for ops in CLASSES:
        members = [(name, m) for name, m in macs if op_of[name] in ops]
        if not members:
            continue
        class_total = sum(m for _, m in members) or 1.0
        k = max(1, round(n * class_total / total))
        groups: list[list[str]] = [[]]
        acc = 0.0
        for name, m in members:
            if groups[-1] and acc + m / 2 > class_total / k * len(groups) and len(groups) < k:
                groups.append([])
            groups[-1].append(name)
            acc += m
        out.extend(g for g in groups if g)
    return out


def _rel_error(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> float:
    """Largest relative L2 error over the encoder outputs."""
    errs = []
    for k, r in ref.items():
        r64, g64 = r.astype(np.float64), got[k].astype(np.float64)
        errs.append(float(np.linalg.norm(r64 - g64) / max(float(np.linalg.norm(r64)), 1e-12)))
    return max(errs)


def select_nodes(src: Path, cache: Path, probe: Feed, config: Int8Config, tmp: Path,
                 accept: Callable[[Path], float], say: Callable[[str], None]) -> dict[str, Any]:
    """Choose the nodes to quantize (see module doc). Returns ``nodes`` plus figures.

    ``accept(path)`` scores a candidate int8 encoder file (the e2e mask IoU vs fp32 on the
    probe images); a prefix is accepted when its score reaches ``config.target``.
    """
    import onnx

    from edge_sam_sdk.runtimes.onnxruntime_backend import OnnxRuntimeBackend

    model = onnx.load(str(src), load_external_data=False)
    macs = node_macs(model)
    op_of = {node.name: node.op_type for node in model.graph.node}
    total = sum(m for _, m in macs) or 1.0
    share = dict((n, m / total) for n, m in macs)
    if config.nodes is not None:
        chosen = [n for n, _ in macs if n in set(config.nodes)]
        return {"nodes": chosen, "mode": "fixed", "compute_share": sum(share[n] for n in chosen)}
    ref = OnnxRuntimeBackend(src).run(probe)
    groups = make_groups(macs, op_of, config.groups)
    rows: list[dict[str, Any]] = []
    for i, nodes in enumerate(groups):
        say(f"int8 sensitivity of node group {i + 1}/{len(groups)} ({len(nodes)} nodes)")
        path = tmp / "probe.onnx"
        quantize(src, path, cache, config, nodes)
        rows.append({"group": i, "nodes": len(nodes), "first": nodes[0], "last": nodes[-1],
                     "compute_share": sum(share[n] for n in nodes),
                     "error": _rel_error(ref, OnnxRuntimeBackend(path).run(probe)), "quantized": False})
    order = sorted(rows, key=lambda r: -r["compute_share"] / max(r["error"], 1e-6) ** 2)

    def nodes_of(k: int) -> list[str]:
        taken = sorted(r["group"] for r in order[:k])
        return [n for g in taken for n in groups[g]]

    scores: dict[int, float] = {}

    def score(k: int) -> float:
        if k not in scores:
            say(f"int8 probe: quantizing the {k} least sensitive group(s) per unit of compute")
            path = tmp / "probe.onnx"
            quantize(src, path, cache, config, nodes_of(k))
            scores[k] = accept(path)
        return scores[k]

    lo, hi = 0, len(order)  # largest k with score(k) >= target, by bisection (score falls with k)
    if score(hi) >= config.target:
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if score(mid) >= config.target else (lo, mid)
    for r in order[:lo]:
        r["quantized"] = True
    chosen = nodes_of(lo)
    return {"nodes": chosen, "mode": "sensitivity", "target_mask_iou": config.target, "groups": rows,
            "probe_mask_iou": scores.get(lo, 1.0), "compute_share": sum(share[n] for n in chosen),
            "probes": {str(k): v for k, v in sorted(scores.items())}}
