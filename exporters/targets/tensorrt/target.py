"""The TensorRT target: serialized engines built from our TensorRT-ready ONNX graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_sam_sdk.graphs import GraphSpec, sample_feed

from ..base import ExportTarget


class TensorRTTarget(ExportTarget):
    """TensorRT engines built from our ONNX graphs (:mod:`.engine`); needs TensorRT,
    pycuda and a GPU, checked first. Options: ``simplify``, ``tensorrt``
    (:class:`.engine.TensorRTOptions` fields as a dict)."""

    name, suffix = "tensorrt", ".engine"
    precisions = ("fp32", "fp16", "int8")
    options = {"simplify": True, "tensorrt": None}

    def check(self) -> None:
        super().check()
        from .engine import TensorRTOptions, require_tensorrt

        require_tensorrt()
        self.trt = TensorRTOptions(precision=self.precision, processing=self.spec.processing,
                                   **(self.opts["tensorrt"] or {})).validate()

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        specs = self.trt.parity_specs(specs)
        self.feeds = {n: sample_feed(g, **self.trt.feed_dims()) for n, g in specs.items()}
        return specs

    def export_graph(self, name: str, module: Any, graph: GraphSpec, path: Path) -> dict[str, Any]:
        from .engine import export_engine

        return export_engine(module, graph, self.feeds[name], path, self.opts["simplify"], self.trt, self.say)

    def finish(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> None:
        from .engine import build_facts

        manifest["tensorrt"] = build_facts(tmp, manifest, self.trt)
