"""The Core ML target: mlprogram packages converted from ``torch.export`` programs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_sam_sdk.graphs import GraphSpec, sample_feed

from ..base import ExportTarget


class CoreMLTarget(ExportTarget):
    """Core ML mlprogram packages from ``torch.export`` (:mod:`.export`); converts on any
    OS, runs on macOS only, where parity is measured (elsewhere the packages are checked
    against the specs). Option ``target_options``: :class:`.export.CoreMLOptions`
    fields as a dict (``weights_int8``, ``palettize``, ``deployment_target``, ``max_points``,
    ``max_prompts``)."""

    name, suffix = "coreml", ".mlpackage"
    precisions = ("fp32", "fp16")
    options = {"target_options": None}

    def check(self) -> None:
        from .export import coreml_options, require_coremltools

        self.coreml = coreml_options(self.precision, self.opts["target_options"])
        require_coremltools()

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        self.source = manifest["checkpoint"]["source"]
        return super().prepare(modules, specs, manifest)

    def export_graph(self, name: str, module: Any, graph: GraphSpec, path: Path) -> dict[str, Any]:
        from .export import export_coreml

        feed = self.feeds[name]
        other = [sample_feed(graph, seed=1, batch=1, points=min(5, self.coreml.max_points))]
        checks = [feed] + (other if graph.dynamic_axes() else [])  # other B and N
        return export_coreml(module, graph, feed, path, self.spec, self.coreml, self.source,
                             check_feeds=checks)

    def parity(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> dict[str, Any]:
        from .export import bundle_parity

        self.say("Core ML parity is measured on macOS only; the packages were checked against the specs")
        result: dict[str, Any] = bundle_parity(tmp, manifest, specs, modules, self.coreml)
        return result
