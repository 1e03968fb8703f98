"""Core ML target, torch side: ``torch.export`` of a graph module, lowered for coremltools.

The Core ML converter reads ``torch.export`` programs (not TorchScript), which works on
Linux. This module turns one of our graph modules into such a program:

- dynamic axes of the :class:`~edge_sam_sdk.graphs.GraphSpec` (the decoder's prompt batch
  ``B`` and point count ``N``) become ``torch.export.Dim`` ranges, which the converter
  turns into Core ML ``RangeDim`` inputs;
- ops coremltools 9 cannot convert are decomposed into ops it can, with exact maths:
  bicubic resizes (``aten.upsample_bicubic2d``: EdgeSAM's FPN, EfficientViT-SAM's neck,
  SAM 2's position embedding) become two matrix products with torch's own bicubic
  weights (``R_h @ x @ R_w^T``), as EfficientSAM's position embedding already is;
  ``aten.alias`` (full-range slices in the video memory attention) is dropped;
- :func:`check_program` runs the lowered program in torch against the module on sample
  feeds (including other ``B``/``N`` than the traced ones), the check that stands in for
  Core ML parity on machines that cannot run Core ML.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from edge_sam_sdk.graphs import GraphSpec, parity, parity_ok


def bicubic_matrix(n_in: int, n_out: int, align_corners: bool, scale: float | None = None,
                   a: float = -0.75) -> np.ndarray:
    """``n_out x n_in`` float64 weights of torch's 1-D bicubic resize (``aten.upsample_bicubic2d``).

    Half-pixel source positions (``align_corners=False``; ``scale`` is the scale factor the
    caller gave, else ``n_out / n_in``), cubic convolution with ``a = -0.75``, border taps
    clamped, as torch computes them. Resizing ``x`` (``...xHxW``) equals ``R_h @ x @ R_w.T``.
    """
    if align_corners:
        step = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        step = 1.0 / scale if scale else n_in / n_out
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        real = step * i if align_corners else step * (i + 0.5) - 0.5
        first = math.floor(real)
        t = real - first
        weights = (((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                   ((a + 2) * t - (a + 3)) * t * t + 1,
                   ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
                   ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a)
        for k, w in enumerate(weights):
            m[i, min(max(first - 1 + k, 0), n_in - 1)] += w
    return m


def _bicubic_weights(n_in: int, n_out: int, align_corners: bool, scale: float | None,
                     dtype: torch.dtype, a: float = -0.75) -> torch.Tensor:
    """:func:`bicubic_matrix` built from ``arange`` arithmetic (``n_out x n_in``).

    Inside a decomposition a tensor made from data would be an unregistered constant;
    these ops depend on no input, so the converter folds them into one constant.
    """
    if align_corners:
        step = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        step = 1.0 / scale if scale else n_in / n_out
    i = torch.arange(n_out, dtype=torch.float32)
    real = i * step if align_corners else (i + 0.5) * step - 0.5
    first = torch.floor(real)
    t = real - first
    u = 1 - t
    weights = ((((t + 1) * a - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
               ((a + 2) * t - (a + 3)) * t * t + 1,
               ((a + 2) * u - (a + 3)) * u * u + 1,
               (((u + 1) * a - 5 * a) * (u + 1) + 8 * a) * (u + 1) - 4 * a)
    cols = torch.arange(n_in, dtype=torch.float32)[None, :]
    m = torch.zeros(n_out, n_in)
    for k, w in enumerate(weights):
        tap = torch.clamp(first + (k - 1), 0, n_in - 1)[:, None]
        m = m + (tap == cols).to(torch.float32) * w[:, None]
    return m.to(dtype)


def _resize_bicubic(x: torch.Tensor, size: tuple[int, int], align_corners: bool,
                    scales: tuple[float | None, float | None]) -> torch.Tensor:
    h, w = int(x.shape[-2]), int(x.shape[-1])
    rh = _bicubic_weights(h, size[0], align_corners, scales[0], x.dtype)
    rw = _bicubic_weights(w, size[1], align_corners, scales[1], x.dtype).t()
    return torch.matmul(torch.matmul(rh, x), rw)


def _bicubic_vec(x: torch.Tensor, output_size: Any, align_corners: bool,
                 scale_factors: Any) -> torch.Tensor:
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if output_size is not None:
        size = (int(output_size[0]), int(output_size[1]))
        scales: tuple[float | None, float | None] = (None, None)
    else:
        sh, sw = float(scale_factors[0]), float(scale_factors[1])
        size, scales = (math.floor(h * sh), math.floor(w * sw)), (sh, sw)
    return _resize_bicubic(x, size, align_corners, scales)


def _bicubic_default(x: torch.Tensor, output_size: Any, align_corners: bool,
                     scales_h: float | None = None, scales_w: float | None = None) -> torch.Tensor:
    return _resize_bicubic(x, (int(output_size[0]), int(output_size[1])), align_corners,
                           (scales_h, scales_w))


def decompositions() -> dict[Any, Any]:
    """Decompositions applied before conversion: ops coremltools 9 lacks, in exact maths."""
    aten = torch.ops.aten
    return {aten.upsample_bicubic2d.vec: _bicubic_vec, aten.upsample_bicubic2d.default: _bicubic_default}


def dynamic_shapes(graph: GraphSpec, ranges: dict[str, tuple[int, int]]) -> dict[str, Any] | None:
    """``torch.export`` dynamic shapes of ``graph``'s inputs: each named axis -> ``Dim(lo, hi)``."""
    named = {d for t in graph.inputs for d in t.shape if isinstance(d, str)}
    if not named:
        return None
    missing = sorted(named - set(ranges))
    if missing:
        raise ValueError(f"no range given for the dynamic axes {missing} of the {graph.name} graph")
    dims = {d: torch.export.Dim(d, min=ranges[d][0], max=ranges[d][1]) for d in sorted(named)}
    return {t.name: ({i: dims[d] for i, d in enumerate(t.shape) if isinstance(d, str)} or None)
            for t in graph.inputs}


def export_program(module: torch.nn.Module, graph: GraphSpec, feed: dict[str, np.ndarray],
                   ranges: dict[str, tuple[int, int]]) -> Any:
    """``torch.export`` ``module`` on ``feed`` (inputs in ``graph`` order), lowered for Core ML.

    ``ranges`` bounds each dynamic axis, e.g. ``{"B": (1, 64), "N": (1, 16)}``; the traced
    feed's sizes must lie inside. Returns the decomposed ``ExportedProgram``.
    """
    args = tuple(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in graph.input_names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(module.eval(), args, dynamic_shapes=dynamic_shapes(graph, ranges),
                                      strict=False)
        return drop_aliases(program.run_decompositions(decompositions()))


def drop_aliases(program: Any) -> Any:
    """Remove ``aten.alias`` nodes (a full-range slice such as ``k[:, :n]`` with ``n`` the
    length lowers to one; coremltools 9 has no converter for it): each use reads the aliased
    tensor itself, which is exact. Returns ``program``, changed in place."""
    graph = program.graph_module.graph
    aliases = [n for n in graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.alias.default]
    for node in aliases:
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
    if aliases:
        program.graph_module.recompile()
    return program


def check_program(program: Any, module: torch.nn.Module, graph: GraphSpec,
                  feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Run the lowered ``program`` and ``module`` in torch on each feed; worst figures per output.

    Returns ``{"outputs": {name: parity figures}, "ok": bool, "feeds": n}``, with ``ok`` under
    the graph's parity bound.
    """
    worst: dict[str, dict[str, float]] = {}
    runner = program.module()
    with torch.no_grad():
        for feed in feeds:
            args = [torch.from_numpy(np.ascontiguousarray(feed[n])) for n in graph.input_names]
            ref, got = module(*args), runner(*args)
            ref = (ref,) if isinstance(ref, torch.Tensor) else tuple(ref)
            got = (got,) if isinstance(got, torch.Tensor) else tuple(got)
            for name, r, g in zip(graph.output_names, ref, got, strict=True):
                fig = parity(r.numpy(), g.numpy())
                if name not in worst or fig["rel_l2"] > worst[name]["rel_l2"]:
                    worst[name] = fig
    return {"outputs": worst, "ok": all(parity_ok(f, graph) for f in worst.values()), "feeds": len(feeds)}
