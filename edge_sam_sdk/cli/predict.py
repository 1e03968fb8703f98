"""``edgesam predict``: prompts on one image through a bundle, an overlay PNG and JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..predictor import COORD_LIMIT_SIDES
from .arguments import box_arg, output_file, point_arg, positive_int


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


def check_args(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Every argument checked before any work: prompts given, ``--out``'s folder exists and
    its extension is one Pillow writes, ``--save-npz``'s folder exists. Returns both paths."""
    from ..visualize import image_format

    if not args.point and not args.box:
        raise InputError("give at least one prompt: --point X,Y,LABEL or --box X0,Y0,X1,Y1")
    if args.box and len(args.box) > 1 and args.point:
        raise InputError("several --box prompts cannot be combined with --point")
    out = output_file(args.out, "--out")
    assert out is not None
    image_format(out)
    npz = output_file(args.save_npz, "--save-npz")
    if npz is not None and npz.resolve() == out.resolve():
        raise InputError("--out and --save-npz name the same file")
    return out, npz


def run(args: argparse.Namespace) -> int:
    from ..atomic import atomic_paths
    from ..visualize import image_format, load_image, overlay

    out, npz = check_args(args)
    image = load_image(args.image)
    limit = COORD_LIMIT_SIDES * max(image.shape[:2])
    for flag, values in (("--point", [p[:2] for p in args.point or []]), ("--box", args.box or [])):
        if any(abs(v) > limit for row in values for v in row):
            raise InputError(f"{flag} coordinates must lie within +-{limit} pixels ({COORD_LIMIT_SIDES}x the "
                             "image's longest side)")
    masks, scores, low, timings, extra = segment(args.bundle, image, args.point or [], args.box or [],
                                                  args.multimask, args.backend, args.threads,
                                                  args.stability_score)
    pts = np.array(args.point) if args.point else None
    shown = masks[[int(np.argmax(scores))]] if args.multimask and not args.all_masks else masks
    picture = overlay(image, shown, None if pts is None else pts[:, :2], None if pts is None else pts[:, 2],
                      args.box)
    # Both files appear together, after everything is computed, or neither does.
    with atomic_paths([out] + ([npz] if npz is not None else [])) as tmps:
        from PIL import Image

        Image.fromarray(picture).save(str(tmps[0]), format=image_format(out))
        if npz is not None:
            with open(tmps[1], "wb") as f:
                np.savez_compressed(f, masks=masks, iou_predictions=scores, low_res_logits=low)
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
    r.add_argument("--point", type=point_arg, action="append",
                   help="X,Y,LABEL (1 fg, 0 bg) pixels; repeatable; negative values work as "
                        "--point -5,20,1 or --point=-5,20,1")
    r.add_argument("--box", type=box_arg, action="append",
                   help="X0,Y0,X1,Y1 pixels (X1 > X0, Y1 > Y0); repeatable")
    r.add_argument("--multimask", action="store_true", help="3 candidate masks (best one drawn)")
    r.add_argument("--all-masks", action="store_true", help="draw every returned mask")
    r.add_argument("--stability-score", action="store_true",
                   help="rank masks by stability score instead of predicted IoU (EdgeSAM's advice)")
    r.add_argument("--out", required=True,
                   help="overlay image to write (format from the extension: .png, .jpg, ...; "
                        "the folder must exist)")
    r.add_argument("--save-npz", help="also save masks, scores and low-res logits (the folder must exist)")
    r.add_argument("--backend", default="auto", help="runtime backend (default: the bundle target's)")
    r.add_argument("--threads", type=positive_int)
    r.set_defaults(fn=run)
