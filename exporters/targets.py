"""Export targets: one small class per target behind one protocol, looked up in :data:`TARGETS`.

:func:`.export.export_bundle` runs the same pipeline for every target and asks the target
at each step (mmdeploy-style: no format branches in the pipeline):

1. ``__init__`` -- check the precision, the target's options and the packages it needs,
   before any work (a missing package is one line naming the pip command);
2. :meth:`ExportTarget.prepare` -- after the model is built: adjust modules or specs (the
   PTQ4SAM sign flip, TensorRT's parity shapes), read calibration data;
3. :meth:`ExportTarget.export_graph` -- write one graph, return its manifest facts;
4. :meth:`ExportTarget.after_export`, :meth:`ExportTarget.parity`,
   :meth:`ExportTarget.finish` -- checks, parity against torch, reduced precision/reports.

Each target module (``onnx_export``, ``tensorrt_export``, ``coreml_export``,
``tflite_export``) is imported only when its target is used.
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

        from .export import measure_parity

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


class OnnxTarget(ExportTarget):
    """ONNX (opset 17, onnxsim, :mod:`.onnx_nchwc` rewrites; opset 20 where tanh GELUs become
    ``Gelu``), fp32; fp16 and int8 QDQ converted from the checked fp32 graphs.

    Options: ``simplify`` (onnxsim, default True); ``tensorrt_ready`` (skip onnxruntime-only
    fusions and fail unless every graph passes :mod:`.tensorrt_check`); for fp16/int8:
    ``calibration_images`` (a folder; default generated scenes, :mod:`.calibration`),
    ``bimodal_fix`` (PTQ4SAM sign flip before int8, default True), ``int8``
    (:class:`.precision.Int8Config`), ``quality_images`` (extra ``(name, image)`` pairs the
    quality report compares on).
    """

    name, suffix = "onnx", ".onnx"
    precisions = ("fp32", "fp16", "int8")
    options = {"simplify": True, "tensorrt_ready": False, "calibration_images": None,
               "bimodal_fix": True, "int8": None, "quality_images": ()}
    BIMODAL_IMAGES = 4  #: calibration images the bimodal-activation detection runs torch on

    def check(self) -> None:
        from .precision import check_request

        check_request(self.precision, self.name, self.opts["int8"])
        self.steps = 4 if self.precision == "fp32" else 6

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        from .calibration import calibration_set
        from .precision import Int8Config

        self.cal = calibration_set(self.opts["calibration_images"]) if self.precision != "fp32" else None
        self.fix = None
        if self.precision == "int8" and self.cal is not None:
            symmetric = (self.opts["int8"] or Int8Config()).symmetric
            self.fix = self._bimodal(modules["encoder"], symmetric)
        return super().prepare(modules, specs, manifest)

    def _bimodal(self, encoder: Any, symmetric: bool) -> dict[str, Any]:
        """Apply the PTQ4SAM sign flip to ``encoder`` in place (when enabled); its report."""
        if not self.opts["bimodal_fix"]:
            return {"enabled": False}
        from edge_sam_sdk.processing import preprocess

        from .bimodal import bimodal_fix

        assert self.cal is not None
        chosen = self.cal.calibrate[:self.BIMODAL_IMAGES]
        images = [preprocess(im, self.spec.processing)[0] for _, im in chosen]
        self.say(f"detecting bimodal key activations on {len(images)} calibration image(s)")
        report = {"enabled": True} | bimodal_fix(encoder, images, symmetric)
        self.say(f"bimodal fix: {report['flipped_channels']} key/query channel(s) flipped in "
                 f"{report['applied']} of {report['sites']} attention layer(s)")
        return report

    def export_graph(self, name: str, module: Any, graph: GraphSpec, path: Path) -> dict[str, Any]:
        from .onnx_export import export_onnx
        from .tensorrt_check import ORT_FUSIONS

        return export_onnx(module, graph, self.feeds[name], path, simplify=self.opts["simplify"],
                           skipped_optimizers=ORT_FUSIONS if self.opts["tensorrt_ready"] else (),
                           nchwc_rewrites=not self.opts["tensorrt_ready"])

    def after_export(self, tmp: Path, manifest: dict[str, Any]) -> None:
        from .tensorrt_check import check_bundle_graphs

        manifest["tensorrt_check"] = check_bundle_graphs(tmp, manifest["graphs"], self.opts["tensorrt_ready"],
                                                         self.say)

    def finish(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> None:
        if self.cal is None:
            return

        from .reduce import reduce_bundle

        manifest["fp32_export_parity"] = manifest.pop("export_parity")
        reduce_bundle(tmp, manifest, self.cal, self.precision, self.opts["int8"], self.opts["quality_images"],
                      self.say, (5, self.steps))
        if self.fix is not None:
            manifest["calibration"]["bimodal_fix"] = self.fix
        manifest["export_parity"] = self.graph_parity(written(tmp, manifest), modules, specs, judge=False)


class TensorRTTarget(ExportTarget):
    """TensorRT engines built from our ONNX graphs (:mod:`.tensorrt_export`); needs TensorRT,
    pycuda and a GPU, checked first. Options: ``simplify``, ``tensorrt``
    (:class:`.tensorrt_export.TensorRTOptions` fields as a dict)."""

    name, suffix = "tensorrt", ".engine"
    precisions = ("fp32", "fp16", "int8")
    options = {"simplify": True, "tensorrt": None}

    def check(self) -> None:
        super().check()
        from .tensorrt_export import TensorRTOptions, require_tensorrt

        require_tensorrt()
        self.trt = TensorRTOptions(precision=self.precision, processing=self.spec.processing,
                                   **(self.opts["tensorrt"] or {})).validate()

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        specs = self.trt.parity_specs(specs)
        self.feeds = {n: sample_feed(g, **self.trt.feed_dims()) for n, g in specs.items()}
        return specs

    def export_graph(self, name: str, module: Any, graph: GraphSpec, path: Path) -> dict[str, Any]:
        from .tensorrt_export import export_engine

        return export_engine(module, graph, self.feeds[name], path, self.opts["simplify"], self.trt, self.say)

    def finish(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> None:
        from .tensorrt_export import build_facts

        manifest["tensorrt"] = build_facts(tmp, manifest, self.trt)


class CoreMLTarget(ExportTarget):
    """Core ML mlprogram packages from ``torch.export`` (:mod:`.coreml_export`); converts on any
    OS, runs on macOS only, where parity is measured (elsewhere the packages are checked
    against the specs). Option ``target_options``: :class:`.coreml_export.CoreMLOptions`
    fields as a dict (``weights_int8``, ``palettize``, ``deployment_target``, ``max_points``,
    ``max_prompts``)."""

    name, suffix = "coreml", ".mlpackage"
    precisions = ("fp32", "fp16")
    options = {"target_options": None}

    def check(self) -> None:
        from .coreml_export import coreml_options, require_coremltools

        self.coreml = coreml_options(self.precision, self.opts["target_options"])
        require_coremltools()

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        self.source = manifest["checkpoint"]["source"]
        return super().prepare(modules, specs, manifest)

    def export_graph(self, name: str, module: Any, graph: GraphSpec, path: Path) -> dict[str, Any]:
        from .coreml_export import export_coreml

        feed = self.feeds[name]
        other = [sample_feed(graph, seed=1, batch=1, points=min(5, self.coreml.max_points))]
        checks = [feed] + (other if graph.dynamic_axes() else [])  # other B and N
        return export_coreml(module, graph, feed, path, self.spec, self.coreml, self.source,
                             check_feeds=checks)

    def parity(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> dict[str, Any]:
        from .coreml_export import bundle_parity

        self.say("Core ML parity is measured on macOS only; the packages were checked against the specs")
        result: dict[str, Any] = bundle_parity(tmp, manifest, specs, modules, self.coreml)
        return result


class TfliteTarget(ExportTarget):
    """TFLite / LiteRT through litert-torch (:mod:`.tflite_export`): one ``encoder`` signature,
    one static decoder signature per prompt point count; fp16 and int8 quantize the converted,
    parity-checked fp32 graphs (:mod:`.tflite_quant`) and add a quality report against them.

    Options: ``calibration_images`` and ``quality_images`` (as for onnx), ``tflite``:
    ``{"decoder_points": "0-16", "fp32_bundle": PATH}`` (:data:`.tflite_export.OPTIONS`).
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
        from .tflite_export import parity_feed

        facts = manifest["graphs"][graph.name].get("extra", {}).get("tflite", {})
        return parity_feed(graph, list(facts.get("signatures", [])))

    def check(self) -> None:
        super().check()
        from .tflite_export import check_options

        self.points = check_options(self.precision, dict(self.opts["tflite"] or {}))
        if self.precision == "fp32" and (self.opts["calibration_images"] or self.opts["quality_images"]):
            raise EdgeSamError("--calibration-images and --quality-image apply to --precision fp16|int8 only")

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        from .calibration import MIXED_SIZES, calibration_set
        from .tflite_export import fp32_source

        folder = (self.opts["tflite"] or {}).get("fp32_bundle")
        self.source = fp32_source(folder, self.spec.name, manifest["checkpoint"]) if folder else None
        self.cal = (calibration_set(self.opts["calibration_images"], MIXED_SIZES)
                    if self.precision != "fp32" else None)
        self.fp32_files: dict[str, Path] = {}
        self.steps = 4 if self.precision == "fp32" else 5
        return super().prepare(modules, specs, manifest)

    def export_graph(self, name: str, module: Any, graph: GraphSpec, path: Path) -> dict[str, Any]:
        from . import tflite_quant
        from .tflite_export import convert_fp32, parity_feed, reuse_fp32

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

            from .quality import quality_report

            images = list(self.opts["quality_images"]) + self.cal.held_out
            self.say(f"[5/5] quality report: {self.precision} vs fp32 on {len(images)} held-out image(s)")
            ref = Bundle(dict(manifest, precision="fp32"),
                         *(TfliteBackend(self.fp32_files[g]) for g in GRAPHS))
            got = Bundle(manifest, *(TfliteBackend(p) for p in written(tmp, manifest).values()))
            manifest["calibration"] = self.cal.manifest() | {"used": self.precision == "int8"}
            manifest["quality"] = quality_report(ref, got, images, precision=self.precision)
        shutil.rmtree(tmp / "_fp32", ignore_errors=True)


TARGETS: dict[str, type[ExportTarget]] = {"onnx": OnnxTarget, "tensorrt": TensorRTTarget,
                                          "coreml": CoreMLTarget, "tflite": TfliteTarget}


def make_target(target: str, spec: VariantSpec, precision: str, options: Mapping[str, Any],
                say: Progress) -> ExportTarget:
    """The target ``target`` for ``spec``, its precision, options and packages checked."""
    if target not in TARGETS:
        raise EdgeSamError(f"unknown target {target!r}; supported: {sorted(TARGETS)}")
    if target not in spec.targets:
        raise EdgeSamError(f"variant {spec.name} does not support target {target!r} "
                           f"(supported: {list(spec.targets)})")
    return TARGETS[target](spec, precision, options, say)

