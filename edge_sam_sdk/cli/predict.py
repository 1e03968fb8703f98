"""``edgesam predict``: prompts on one image through a bundle, an overlay PNG and JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from ..errors import InputError
from .arguments import box_arg, point_arg


def segment(bundle_path: str, image: np.ndarray, points: list[list[float]], boxes: list[list[float]],
            multimask: bool, backend: str, threads: int | None,
            stability: bool = False) -> tuple[Any, ...]:
    from ..bundle import load_bundle
    from ..predictor import SamPredictor

    options: dict[str, Any] = {"threads": threads} if threads else {}
    predictor = SamPredictor(load_bundle(bundle_path, backend=backend, **options))
    predictor.set_image(image)
    kw: dict[str, Any] = {"multimask_output": multimask, "use_stability_score": stability}
    if points:
        arr = np.array(points, dtype=np.float64)
        kw.update(point_coords=arr[:, :2], point_labels=arr[:, 2])
    if len(boxes) > 1:
        if points:
            raise InputError("several --box prompts cannot be combined with --point")
        masks, scores, low = predictor.predict_batch(boxes=np.array(boxes), multimask_output=multimask,
                                                     use_stability_score=stability)
        best = np.argmax(scores, axis=1)
        masks, scores, low = (a[np.arange(len(best)), best] for a in (masks, scores, low))
    else:
        if boxes:
            kw["box"] = np.array(boxes[0])
        masks, scores, low = predictor.predict(**kw)
    return masks, scores, low, predictor.timings, predictor.extra_outputs


def run(args: argparse.Namespace) -> int:
    from ..visualize import load_image, overlay, save_png

    if not args.point and not args.box:
        raise InputError("give at least one prompt: --point X,Y,LABEL or --box X0,Y0,X1,Y1")
    image = load_image(args.image)
    masks, scores, low, timings, extra = segment(args.bundle, image, args.point or [], args.box or [],
                                                  args.multimask, args.backend, args.threads,
                                                  args.stability_score)
    pts = np.array(args.point) if args.point else None
    shown = masks[[int(np.argmax(scores))]] if args.multimask and not args.all_masks else masks
    save_png(overlay(image, shown, None if pts is None else pts[:, :2],
                     None if pts is None else pts[:, 2], args.box), args.out)
    if args.save_npz:
        np.savez_compressed(args.save_npz, masks=masks, iou_predictions=scores, low_res_logits=low)
    report: dict[str, Any] = {"overlay": str(args.out),
                              "iou_predictions": [round(float(s), 4) for s in scores],
                              "mask_area": [int(m.sum()) for m in masks]}
    # Further decoder outputs (SAM 2: object_score_logits, > 0 when an object is present).
    report.update({k: np.round(v.astype(np.float64), 4).tolist() for k, v in extra.items()})
    report["timings_ms"] = {k: round(v, 1) for k, v in timings.items()}
    print(json.dumps(report))
    return 0


def add_parser(sub: Any) -> None:
    r = sub.add_parser("predict", help="segment an image with a bundle, write an overlay PNG")
    r.add_argument("bundle")
    r.add_argument("--image", required=True)
    r.add_argument("--point", type=point_arg, action="append", help="X,Y,LABEL (1 fg, 0 bg); repeatable")
    r.add_argument("--box", type=box_arg, action="append", help="X0,Y0,X1,Y1 pixels; repeatable")
    r.add_argument("--multimask", action="store_true", help="3 candidate masks (best one drawn)")
    r.add_argument("--all-masks", action="store_true", help="draw every returned mask")
    r.add_argument("--stability-score", action="store_true",
                   help="rank masks by stability score instead of predicted IoU (EdgeSAM's advice)")
    r.add_argument("--out", required=True, help="overlay PNG to write")
    r.add_argument("--save-npz", help="also save masks, scores and low-res logits")
    r.add_argument("--backend", default="auto")
    r.add_argument("--threads", type=int)
    r.set_defaults(fn=run)
