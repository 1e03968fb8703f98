"""``edgesam everything``: every mask of an image (grid, hierarchical or box prompts), overlay + JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .arguments import box_arg, read_boxes, say


def run(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..everything.generator import AutomaticMaskGenerator
    from ..everything.mask_ops import rle_to_mask
    from ..visualize import color_overlay, load_image, save_png

    boxes = (read_boxes(args.boxes) if args.boxes else []) + (args.box or [])
    if args.sampling == "boxes" and not boxes:
        raise InputError("--sampling boxes needs prompts: --boxes FILE.json or --box X0,Y0,X1,Y1")
    if boxes and args.sampling != "boxes":
        raise InputError("--box/--boxes are prompts for --sampling boxes")
    image = load_image(args.image)
    options: dict[str, Any] = {"threads": args.threads} if args.threads else {}
    bundle = load_bundle(args.bundle, backend=args.backend, **options)
    kw: dict[str, Any] = {"points_per_side": args.points_per_side, "points_per_batch": args.points_per_batch,
                          "pred_iou_thresh": args.pred_iou_thresh,
                          "stability_score_thresh": args.stability_score_thresh,
                          "box_nms_thresh": args.box_nms_thresh, "crop_n_layers": args.crop_n_layers,
                          "min_mask_region_area": args.min_mask_region_area, "output_mode": "coco_rle",
                          "sampling": args.sampling, "progress": say}
    if args.high_score_thresh is not None:
        kw["high_score_thresh"] = args.high_score_thresh
    generator = AutomaticMaskGenerator(bundle, **kw)
    h, w = image.shape[:2]
    say(f"segmenting everything in {args.image} ({w}x{h}) with {bundle.variant}, sampling {args.sampling}")
    records = generator.generate(image, boxes=np.array(boxes) if boxes else None)
    largest_first = sorted(records, key=lambda r: -r["area"])
    save_png(color_overlay(image, (rle_to_mask(r["segmentation"]) for r in largest_first)), args.out)
    stats = {k: round(v, 1) if isinstance(v, float) else v for k, v in generator.stats.items()}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "image": str(args.image), "image_size": [h, w], "bundle": str(args.bundle),
            "variant": bundle.variant, "sampling": args.sampling, "stats": stats,
            "masks": records}))
    print(json.dumps({"overlay": str(args.out), "json": args.json, "masks": len(records), "stats": stats}))
    return 0


def add_parser(sub: Any) -> None:
    a = sub.add_parser("everything", help="segment everything: every mask of an image, overlay PNG + JSON")
    a.add_argument("bundle")
    a.add_argument("--image", required=True)
    a.add_argument("--sampling", choices=["grid", "hierarchical", "boxes"], default="grid",
                   help="point grid (segment-anything), hierarchical (TinySAM) or given boxes (MobileSAMv2)")
    a.add_argument("--boxes", help="sampling boxes: JSON file [[x0, y0, x1, y1], ...] in pixels")
    a.add_argument("--box", type=box_arg, action="append", help="sampling boxes: X0,Y0,X1,Y1; repeatable")
    a.add_argument("--points-per-side", type=int, default=32)
    a.add_argument("--points-per-batch", type=int, default=64)
    a.add_argument("--pred-iou-thresh", type=float, default=0.88)
    a.add_argument("--stability-score-thresh", type=float, default=0.95)
    a.add_argument("--box-nms-thresh", type=float, default=0.7)
    a.add_argument("--crop-n-layers", type=int, default=0)
    a.add_argument("--min-mask-region-area", type=int, default=0)
    a.add_argument("--high-score-thresh", type=float,
                   help="hierarchical: logit above which the first pass covers a pixel (default 8.5)")
    a.add_argument("--out", required=True, help="overlay PNG to write (each mask in its own colour)")
    a.add_argument("--json", help="write the mask records (COCO RLE segmentations) as JSON")
    a.add_argument("--backend", default="auto")
    a.add_argument("--threads", type=int)
    a.set_defaults(fn=run)
