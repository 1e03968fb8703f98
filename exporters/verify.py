"""``edgesam verify``: parity of a bundle against the torch model built from a checkpoint.

An fp32 bundle is held to the graph-parity bound and e2e mask IoU >= 0.99. A reduced-precision
bundle (fp16, int8) gets the same figures as information, its e2e masks are held to its
precision's bar (:data:`.quality.BARS`), and it gets a quality report against an fp32 bundle
exported here from the same checkpoint (into a temporary folder, for the latency ratio).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.bundle import Bundle
from edge_sam_sdk.checkpoints import resolve_checkpoint
from edge_sam_sdk.graphs import graph_specs
from edge_sam_sdk.predictor import SamPredictor
from edge_sam_sdk.registry import get_variant

from .checkpoint import load_model
from .export import Progress, checkpoint_facts, graph_modules, torch_bundle
from .parity import measure_parity
from .quality import BARS, E2E_PROMPTS, format_report, judgeability, mask_iou, prompt_kwargs, quality_report
from .targets import TARGETS

__all__ = ["E2E_PROMPTS", "format_table", "verify_bundle"]


def verify_bundle(bundle: Bundle, checkpoint: str, image: np.ndarray, image_name: str = "image",
                  progress: Progress | None = None) -> dict[str, Any]:
    """Graph parity on deterministic inputs plus end-to-end mask IoU on ``image``.

    Rows whose ``ok`` is ``None`` are information (reduced-precision graph parity, or a
    variant whose quality synthetic weights cannot judge).
    """
    spec = get_variant(bundle.variant)
    checkpoint = resolve_checkpoint(checkpoint, bundle.variant)  # official / a variant name -> cached file(s)
    precision = str(bundle.manifest.get("precision", "fp32"))
    reduced = precision != "fp32"
    judgeable, _ = judgeability(bundle.variant, checkpoint_facts(checkpoint)["source"])
    model = load_model(spec, checkpoint)
    specs, modules = graph_specs(spec), graph_modules(model)
    rows = []
    ok = True
    for name, backend in (("encoder", bundle.encoder), ("decoder", bundle.decoder)):
        feed = TARGETS[str(bundle.manifest.get("target", "onnx"))].verify_feed(bundle.manifest, specs[name])
        figures = measure_parity(backend, modules[name], specs[name], feed)
        ok &= figures["ok"] or reduced
        for out, f in figures["outputs"].items():
            rows.append({"check": f"{name}.{out}", **f, "ok": None if reduced else figures["ok"]})
    ref = SamPredictor(torch_bundle(bundle.variant, checkpoint))
    got = SamPredictor(bundle)
    ref.set_image(image)
    got.set_image(image)
    bar = BARS.get(precision, 0.99)
    for case in E2E_PROMPTS:
        kw = prompt_kwargs(case, image.shape)
        m_ref, s_ref, _ = ref.predict(**kw)
        m_got, s_got, _ = got.predict(**kw)
        ious = [mask_iou(a, b) for a, b in zip(m_ref, m_got, strict=True)]
        diff = float(np.abs(s_ref - s_got).max())
        case_ok: bool | None = min(ious) >= bar and (reduced or diff <= 0.01)
        if not judgeable and reduced:
            case_ok = None
        ok &= case_ok is not False
        rows.append({"check": f"e2e.{case[0]}", "mask_iou_min": min(ious), "iou_pred_max_diff": diff,
                     "ok": case_ok})
    recorded = bundle.manifest.get("checkpoint", {})
    given = checkpoint_facts(checkpoint)
    same_ckpt = recorded.get("sha256") == given["sha256"] and (
        given["sha256"] is not None or recorded.get("source") == given["source"])
    report: dict[str, Any] = {"ok": bool(ok), "rows": rows, "checkpoint_matches_manifest": same_ckpt,
                              "precision": precision}
    if reduced:
        report["quality"] = _quality(bundle, checkpoint, [(image_name, image)], progress)
        report["ok"] = bool(ok) and report["quality"]["meets_bar"] is not False
    return report


def _quality(bundle: Bundle, checkpoint: str, images: list[tuple[str, np.ndarray]],
             progress: Progress | None) -> dict[str, Any]:
    """Quality report of ``bundle`` against an fp32 bundle exported now from ``checkpoint``."""
    from edge_sam_sdk.bundle import load_bundle

    from .export import export_bundle

    with tempfile.TemporaryDirectory(prefix="edgesam_verify_fp32.") as tmp:
        target = str(bundle.manifest.get("target", "onnx"))
        path = export_bundle(bundle.variant, checkpoint, Path(tmp) / "fp32", target=target,
                             progress=progress, **TARGETS[target].fp32_options(bundle.manifest))
        return quality_report(load_bundle(path), bundle, images)


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'check':<32} {'max_abs':>10} {'max_abs_rel':>12} {'rel_l2':>10} "
             f"{'mask_iou':>9} {'iou_diff':>9}  result"]
    def cell(row: dict[str, Any], key: str, fmt: str = ".2e") -> str:
        return format(row[key], fmt) if key in row else "-"

    for r in report["rows"]:
        verdict = "info" if r["ok"] is None else ("ok" if r["ok"] else "FAIL")
        lines.append(f"{r['check']:<32} {cell(r, 'max_abs'):>10} {cell(r, 'max_abs_rel'):>12} "
                     f"{cell(r, 'rel_l2'):>10} {cell(r, 'mask_iou_min', '.4f'):>9} "
                     f"{cell(r, 'iou_pred_max_diff'):>9}  {verdict}")
    if "quality" in report:
        lines.append(f"{report['precision']} bundle: graph parity is information (not held to the fp32 "
                     f"bound); e2e masks vs torch are held to IoU >= {BARS[report['precision']]}")
        lines.append(format_report(report["quality"]))
    if not report["checkpoint_matches_manifest"]:
        lines.append("note: this checkpoint is not the one the bundle was exported from")
    lines.append("PASS" if report["ok"] else "FAIL")
    return "\n".join(lines)
