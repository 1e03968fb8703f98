"""The TFLite / LiteRT target: litert-torch conversion, fp16/int8 with ai-edge-quantizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.graphs import GraphSpec

from ..base import GRAPHS, ExportTarget, written


class TfliteTarget(ExportTarget):
    """TFLite / LiteRT through litert-torch (:mod:`.export`): one ``encoder`` signature,
    one static decoder signature per prompt point count; fp16 and int8 quantize the converted,
    parity-checked fp32 graphs (:mod:`.quantization`) and add a quality report against them.

    Options: ``calibration_images`` and ``quality_images`` (as for onnx), ``tflite``:
    ``{"decoder_points": "0-16", "fp32_bundle": PATH}`` (:data:`.export.OPTIONS`).
    """

    name, suffix = "tflite", ".tflite"
    precisions = ("fp32", "fp16", "int8")
    options = {"calibration_images": None, "quality_images": (), "tflite": None}

    @classmethod
    def fp32_options(cls, manifest: dict[str, Any]) -> dict[str, Any]:
        points = manifest["graphs"]["decoder"].get("extra", {}).get("tflite", {}).get("points")
        return {"tflite": {"decoder_points": points}} if points else {}

    @classmethod
    def verify_feed(cls, manifest: dict[str, Any], graph: GraphSpec) -> dict[str, np.ndarray]:
        from .export import parity_feed

        facts = manifest["graphs"][graph.name].get("extra", {}).get("tflite", {})
        return parity_feed(graph, list(facts.get("signatures", [])))

    def check(self) -> None:
        super().check()
        from .export import check_options

        self.points = check_options(self.precision, dict(self.opts["tflite"] or {}))
        if self.precision == "fp32" and (self.opts["calibration_images"] or self.opts["quality_images"]):
            raise EdgeSamError("--calibration-images and --quality-image apply to --precision fp16|int8 only")

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        from ...calibration import MIXED_SIZES, calibration_set
        from .export import fp32_source

        folder = (self.opts["tflite"] or {}).get("fp32_bundle")
        self.source = fp32_source(folder, self.spec.name, manifest["checkpoint"]) if folder else None
        self.cal = (calibration_set(self.opts["calibration_images"], MIXED_SIZES)
                    if self.precision != "fp32" else None)
        self.fp32_files: dict[str, Path] = {}
        self.steps = 4 if self.precision == "fp32" else 5
        return super().prepare(modules, specs, manifest)

    def export_graph(self, name: str, module: Any, graph: GraphSpec, path: Path) -> dict[str, Any]:
        from . import quantization as tflite_quant
        from .export import convert_fp32, parity_feed, reuse_fp32

        if self.source is not None:
            fp32, facts = reuse_fp32(self.source, name, graph, self.points, self.say)
        else:
            fp32 = path if self.precision == "fp32" else path.parent / "_fp32" / path.name
            fp32.parent.mkdir(exist_ok=True)
            facts = convert_fp32(module, graph, fp32, self.points, self.spec.name, self.say)
        signatures = list(facts["extra"]["tflite"]["signatures"])
        self.fp32_files[name] = fp32
        self.feeds[name] = parity_feed(graph, signatures)  # a shape some signature takes
        if self.precision == "fp16":
            self.say("    fp16: weights stored as float16")
            facts["extra"]["tflite"].update(tflite_quant.fp16_weights(fp32, path))
        elif self.precision == "int8":
            assert self.cal is not None
            feeds = tflite_quant.encoder_feeds(self.cal, self.spec.processing) if name == "encoder" else []
            facts["extra"]["tflite"].update(tflite_quant.int8(graph, fp32, path, signatures, feeds, self.say))
        return facts

    def parity(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> dict[str, Any]:
        """fp32 graphs against torch (an error outside the bound, also before fp16/int8); the
        reduced graphs' figures are recorded, not judged (their quality report judges)."""
        fp32 = self.graph_parity(self.fp32_files, modules, specs, judge=True)
        if self.precision == "fp32":
            return fp32
        manifest["fp32_export_parity"] = fp32
        return self.graph_parity(written(tmp, manifest), modules, specs, judge=False)

    def finish(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> None:
        import shutil

        if self.cal is not None:
            from edge_sam_sdk.bundle import Bundle
            from edge_sam_sdk.runtimes.tflite_backend import TfliteBackend

            from ...quality import quality_report

            images = list(self.opts["quality_images"]) + self.cal.held_out
            self.say(f"[5/5] quality report: {self.precision} vs fp32 on {len(images)} held-out image(s)")
            ref = Bundle(dict(manifest, precision="fp32"),
                         *(TfliteBackend(self.fp32_files[g]) for g in GRAPHS))
            got = Bundle(manifest, *(TfliteBackend(p) for p in written(tmp, manifest).values()))
            manifest["calibration"] = self.cal.manifest() | {"used": self.precision == "int8"}
            manifest["quality"] = quality_report(ref, got, images, precision=self.precision)
        shutil.rmtree(tmp / "_fp32", ignore_errors=True)
