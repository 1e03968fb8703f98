"""``edgesam verify``: parity of a bundle against the torch model built from a checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_sam_sdk.bundle import Bundle
from edge_sam_sdk.graphs import graph_specs, sample_feed
from edge_sam_sdk.predictor import SamPredictor
from edge_sam_sdk.registry import get_variant

from .checkpoint import load_model
from .export import checkpoint_facts, graph_modules, measure_parity, torch_bundle

#: End-to-end prompts, as fractions of the image size: (name, points, labels, box, multimask).
E2E_PROMPTS: list[tuple[str, list[list[float]] | None, list[int] | None, list[float] | None, bool]] = [
    ("point", [[0.3, 0.55]], [1], None, True),
    ("two_points", [[0.3, 0.55], [0.66, 0.4]], [1, 0], None, False),
    ("box", None, None, [0.15, 0.3, 0.5, 0.8], False),
]


def verify_bundle(bundle: Bundle, checkpoint: str, image: np.ndarray) -> dict[str, Any]:
    """Graph parity on deterministic inputs plus end-to-end mask IoU on ``image``."""
    spec = get_variant(bundle.variant)
    model = load_model(spec, checkpoint)
    specs, modules = graph_specs(spec), graph_modules(model)
    rows = []
    ok = True
    for name, backend in (("encoder", bundle.encoder), ("decoder", bundle.decoder)):
        figures = measure_parity(backend, modules[name], specs[name], sample_feed(specs[name]))
        ok &= figures["ok"]
        for out, f in figures["outputs"].items():
            rows.append({"check": f"{name}.{out}", **f, "ok": figures["ok"]})
    ref = SamPredictor(torch_bundle(bundle.variant, checkpoint))
    got = SamPredictor(bundle)
    ref.set_image(image)
    got.set_image(image)
    h, w = image.shape[:2]
    scale = np.array([w, h], dtype=np.float64)
    for name, pts, labs, box, multi in E2E_PROMPTS:
        kw: dict[str, Any] = {"multimask_output": multi}
        if pts is not None:
            kw.update(point_coords=np.array(pts) * scale, point_labels=np.array(labs))
        if box is not None:
            kw["box"] = np.array(box) * np.concatenate([scale, scale])
        m_ref, s_ref, _ = ref.predict(**kw)
        m_got, s_got, _ = got.predict(**kw)
        ious = [_iou(a, b) for a, b in zip(m_ref, m_got, strict=True)]
        case_ok = min(ious) >= 0.99 and float(np.abs(s_ref - s_got).max()) <= 0.01
        ok &= case_ok
        rows.append({"check": f"e2e.{name}", "mask_iou_min": min(ious),
                     "iou_pred_max_diff": float(np.abs(s_ref - s_got).max()), "ok": case_ok})
    recorded = bundle.manifest.get("checkpoint", {})
    given = checkpoint_facts(checkpoint)
    same_ckpt = recorded.get("sha256") == given["sha256"] and (
        given["sha256"] is not None or recorded.get("source") == given["source"])
    return {"ok": bool(ok), "rows": rows, "checkpoint_matches_manifest": same_ckpt}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'check':<32} {'max_abs':>10} {'max_abs_rel':>12} {'rel_l2':>10} "
             f"{'mask_iou':>9} {'iou_diff':>9}  result"]
    def cell(row: dict[str, Any], key: str, fmt: str = ".2e") -> str:
        return format(row[key], fmt) if key in row else "-"

    for r in report["rows"]:
        lines.append(f"{r['check']:<32} {cell(r, 'max_abs'):>10} {cell(r, 'max_abs_rel'):>12} "
                     f"{cell(r, 'rel_l2'):>10} {cell(r, 'mask_iou_min', '.4f'):>9} "
                     f"{cell(r, 'iou_pred_max_diff'):>9}  {'ok' if r['ok'] else 'FAIL'}")
    if not report["checkpoint_matches_manifest"]:
        lines.append("note: this checkpoint is not the one the bundle was exported from")
    lines.append("PASS" if report["ok"] else "FAIL")
    return "\n".join(lines)
