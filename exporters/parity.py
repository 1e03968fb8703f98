"""Parity of an exported graph against its torch module: figures per output and a verdict.

Used by every target after export (:meth:`.targets.base.ExportTarget.graph_parity`), by the
Core ML bundle check and by ``edgesam verify``. Figures per output: ``max_abs``,
``max_abs_rel`` and ``rel_l2`` (:func:`edge_sam_sdk.graphs.parity`), judged against the
graph spec's bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_sam_sdk.graphs import GraphSpec, parity, parity_ok


def measure_parity(backend: Any, module: Any, graph: GraphSpec,
                   feed: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run ``backend`` and the torch ``module`` on ``feed``; figures per output and overall ok."""
    from edge_sam_sdk.runtimes.torch_backend import TorchBackend

    ref = TorchBackend(module, graph.input_names, graph.output_names).run(feed)
    got = backend.run(feed)
    figures = {n: parity(ref[n], got[n]) for n in graph.output_names}
    return {"outputs": figures, "ok": all(parity_ok(f, graph) for f in figures.values()),
            "bound": {"max_abs_rel": graph.max_abs, "rel_l2": graph.rel_l2}}
