"""``edgesam demo``: export a variant and segment the built-in demo image (the README's first command)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import say
from .predict import segment


def run(args: argparse.Namespace) -> int:
    from ..exporters.export import export_bundle
    from ..visualize import demo_image, overlay, save_png

    out = Path(args.out)
    bundle = out / f"{args.variant}_onnx"
    if not (bundle / "manifest.json").exists() or args.checkpoint != "synthetic:0":
        export_bundle(args.variant, args.checkpoint, bundle, overwrite=True, progress=say)
    image = demo_image()
    save_png(image, out / "demo_image.png")
    h, w = image.shape[:2]
    points = [[0.3 * w, 0.55 * h, 1.0], [0.66 * w, 0.4 * h, 0.0]]
    masks, scores, _, timings, _ = segment(str(bundle), image, points, [], True, "auto", None)
    best = int(np.argmax(scores))
    pts = np.array(points)
    save_png(overlay(image, masks[[best]], pts[:, :2], pts[:, 2]), out / "demo_overlay.png")
    summary = {"bundle": str(bundle), "overlay": str(out / "demo_overlay.png"),
               "iou_predictions": [round(float(s), 4) for s in scores],
               "timings_ms": {k: round(v, 1) for k, v in timings.items()}}
    (out / "demo_timings.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if args.checkpoint.startswith("synthetic:"):
        say("note: synthetic weights give meaningless masks; pass --checkpoint with an official "
             "file for real segmentation")
    return 0


def add_parser(sub: Any) -> None:
    d = sub.add_parser("demo", help="export a variant and segment the built-in demo image")
    d.add_argument("--variant", default="mobile_sam")
    d.add_argument("--checkpoint", default="synthetic:0")
    d.add_argument("--out", default="edgesam_demo")
    d.set_defaults(fn=run)
