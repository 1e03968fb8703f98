"""The export-target protocol: the steps :func:`edge_sam_sdk.exporters.export.export_bundle` asks of a target.

The pipeline runs the same steps for every target (mmdeploy-style: no format branches in
the pipeline); each target is one subpackage (``onnx/``, ``tensorrt/``, ``coreml/``,
``tflite/``) whose ``target.py`` subclasses :class:`ExportTarget`:

1. ``__init__`` -- check the precision, the target's options and the packages it needs,
   before any work (a missing package is one line naming the pip command);
2. :meth:`ExportTarget.prepare` -- after the model is built: adjust modules or specs (the
   PTQ4SAM sign flip, TensorRT's parity shapes), read calibration data;
3. :meth:`ExportTarget.export_graph` -- write one graph, return its manifest facts;
4. :meth:`ExportTarget.after_export`, :meth:`ExportTarget.parity`,
   :meth:`ExportTarget.finish` -- checks, parity against torch, reduced precision/reports.

A target's heavy modules (converters, quantizers) are imported only when it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.graphs import GraphSpec, sample_feed
from edge_sam_sdk.registry import VariantSpec

Progress = Callable[[str], None]
GRAPHS = ("encoder", "decoder")


def written(tmp: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """``{"encoder": path, "decoder": path}`` of the graph files written into ``tmp``."""
    return {name: tmp / manifest["graphs"][name]["file"] for name in GRAPHS}


class ExportTarget:
    """Base target: fp32 only, sample feeds, parity against torch with the graph's bounds."""

    name = ""
    suffix = ""
    precisions: tuple[str, ...] = ("fp32",)
    #: option name -> default; options a target does not list are refused.
    options: Mapping[str, Any] = {}
    steps = 4

    def __init__(self, spec: VariantSpec, precision: str, options: Mapping[str, Any], say: Progress):
        self.spec, self.precision, self.say = spec, precision, say
        unknown = sorted(k for k, v in options.items() if k not in self.options and v not in (None, False))
        if unknown:
            raise EdgeSamError(f"option(s) {unknown} do not apply to target {self.name!r} "
                               f"(it takes {sorted(self.options) or 'none'})")
        self.opts = {k: d if options.get(k) is None else options[k] for k, d in self.options.items()}
        self.check()

    @classmethod
    def fp32_options(cls, manifest: dict[str, Any]) -> dict[str, Any]:
        """Options that export an fp32 twin of the bundle ``manifest`` describes (verify's reference)."""
        return {}

    @classmethod
    def verify_feed(cls, manifest: dict[str, Any], graph: GraphSpec) -> dict[str, np.ndarray]:
        """A parity feed that the bundle ``manifest`` describes can run (``edgesam verify``)."""
        return sample_feed(graph)

    def check(self) -> None:
        """Refuse what this target cannot do, before any work."""
        if self.precision not in self.precisions:
            raise EdgeSamError(f"precision {self.precision!r} is not supported for {self.name} "
                               f"(supported: {', '.join(self.precisions)})")

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        self.feeds = {n: sample_feed(g) for n, g in specs.items()}
        return specs

    def export_graph(self, name: str, module: Any, graph: GraphSpec, path: Path) -> dict[str, Any]:
        raise NotImplementedError

    def after_export(self, tmp: Path, manifest: dict[str, Any]) -> None:
        """Checks on the written graphs (before parity)."""

    def parity(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> dict[str, Any]:
        """Run each written graph with this target's backend against torch; fail outside bounds."""
        return self.graph_parity(written(tmp, manifest), modules, specs, judge=True)

    def graph_parity(self, files: Mapping[str, Path], modules: dict[str, Any], specs: dict[str, GraphSpec],
                     judge: bool) -> dict[str, Any]:
        """Each graph file run by this target's backend against its torch module on ``self.feeds``.

        ``judge``: an ``EdgeSamError`` outside the graph's bound (fp32); otherwise (fp16, int8)
        the figures are recorded with ``ok: None``, judged by the quality report instead.
        """
        from edge_sam_sdk.runtimes import backend_class, backend_for_target

        from ..parity import measure_parity

        cls = backend_class(backend_for_target(self.name))
        figures = {}
        for name in GRAPHS:
            figures[name] = measure_parity(cls(files[name]), modules[name], specs[name], self.feeds[name])
            if not judge:
                figures[name] |= {"ok": None, "bound": None,
                                  "note": f"{self.precision}: recorded, not judged; see quality"}
            elif not figures[name]["ok"]:
                raise EdgeSamError(f"{name} graph fails parity with torch: {figures[name]['outputs']}")
        return figures

    def finish(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> None:
        """Last step before the manifest is written."""
