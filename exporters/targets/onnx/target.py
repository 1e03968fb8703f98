"""The ONNX target: fp32 graphs (torch.onnx, onnxsim, NCHWc rewrites), fp16/int8 from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_sam_sdk.graphs import GraphSpec

from ..base import ExportTarget, written


class OnnxTarget(ExportTarget):
    """ONNX (opset 17, onnxsim, :mod:`.nchwc` rewrites; opset 20 where tanh GELUs become
    ``Gelu``), fp32; fp16 and int8 QDQ converted from the checked fp32 graphs.

    Options: ``simplify`` (onnxsim, default True); ``tensorrt_ready`` (skip onnxruntime-only
    fusions and fail unless every graph passes :mod:`..tensorrt.readiness`); for fp16/int8:
    ``calibration_images`` (a folder; default generated scenes, :mod:`...calibration`),
    ``bimodal_fix`` (PTQ4SAM sign flip before int8, default True), ``int8``
    (:class:`.quantization.Int8Config`), ``quality_images`` (extra ``(name, image)`` pairs the
    quality report compares on).
    """

    name, suffix = "onnx", ".onnx"
    precisions = ("fp32", "fp16", "int8")
    options = {"simplify": True, "tensorrt_ready": False, "calibration_images": None,
               "bimodal_fix": True, "int8": None, "quality_images": ()}
    BIMODAL_IMAGES = 4  #: calibration images the bimodal-activation detection runs torch on

    def check(self) -> None:
        from .quantization import check_request

        check_request(self.precision, self.name, self.opts["int8"])
        self.steps = 4 if self.precision == "fp32" else 6

    def prepare(self, modules: dict[str, Any], specs: dict[str, GraphSpec],
                manifest: dict[str, Any]) -> dict[str, GraphSpec]:
        from ...calibration import calibration_set
        from .quantization import Int8Config

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
        from .export import export_onnx
        from .graph_constants import ORT_FUSIONS

        return export_onnx(module, graph, self.feeds[name], path, simplify=self.opts["simplify"],
                           skipped_optimizers=ORT_FUSIONS if self.opts["tensorrt_ready"] else (),
                           nchwc_rewrites=not self.opts["tensorrt_ready"])

    def after_export(self, tmp: Path, manifest: dict[str, Any]) -> None:
        from ..tensorrt.readiness import check_bundle_graphs

        manifest["tensorrt_check"] = check_bundle_graphs(tmp, manifest["graphs"], self.opts["tensorrt_ready"],
                                                         self.say)

    def finish(self, tmp: Path, manifest: dict[str, Any], modules: dict[str, Any],
               specs: dict[str, GraphSpec]) -> None:
        if self.cal is None:
            return

        from .reduced_precision import reduce_bundle

        manifest["fp32_export_parity"] = manifest.pop("export_parity")
        reduce_bundle(tmp, manifest, self.cal, self.precision, self.opts["int8"], self.opts["quality_images"],
                      self.say, (5, self.steps))
        if self.fix is not None:
            manifest["calibration"]["bimodal_fix"] = self.fix
        manifest["export_parity"] = self.graph_parity(written(tmp, manifest), modules, specs, judge=False)
