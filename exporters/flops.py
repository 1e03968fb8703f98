"""Compute of an export graph, counted once at export and stored in the manifest.

``torch.utils.flop_counter`` counts the matrix products (Linear, MatMul, batched MatMul,
Conv, ConvTranspose, SDPA) of one forward pass at 2 FLOPs per multiply-add; element-wise
ops, softmax and normalizations count 0. That is the *floor* convention of
``edgesam bench``: ``floor_ms = gflops / peak_gflops`` with the peak measured as an fp32
matmul, so a graph at ratio 1.0 runs all its products at matmul peak and its other ops for
free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from edge_sam_sdk.graphs import GraphSpec, sample_feed

#: Dynamic dims of the counted decoder call: one prompt of one click plus SAM's pad point.
COUNT_DIMS = {"B": 1, "N": 2}


def count_gflops(module: Any, graph: GraphSpec) -> dict[str, Any]:
    """GFLOPs of one forward of ``module`` on ``graph``'s sample feed at :data:`COUNT_DIMS`.

    Returns the manifest entry ``{"value": float, "dims": {...}, "flops_per_mac": 2,
    "counter": "torch.utils.flop_counter"}``. A decoder is counted per prompt without a
    mask input (the predictor's common call).
    """
    feed = sample_feed(graph, batch=COUNT_DIMS["B"], points=COUNT_DIMS["N"])
    if "has_mask_input" in feed:
        feed["has_mask_input"][:] = 0.0
    dims = {k: v for k, v in COUNT_DIMS.items() if any(k in t.shape for t in graph.inputs)}
    return {"value": feeds_gflops(module, graph.input_names, [feed]), "dims": dims, "flops_per_mac": 2,
            "counter": "torch.utils.flop_counter"}


def feeds_gflops(module: Any, input_names: Iterable[str], feeds: Iterable[Mapping[str, np.ndarray]]) -> float:
    """GFLOPs of ``module`` run once on each of ``feeds`` (numpy, by input name), summed."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    names = list(input_names)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        for feed in feeds:
            module(*[torch.from_numpy(np.asarray(feed[n])) for n in names])
    return float(counter.get_total_flops()) / 1e9
