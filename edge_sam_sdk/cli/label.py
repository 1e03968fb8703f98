"""``edgesam label``: segment everything over a folder or an image list into one COCO file
(resumable; ``--ray`` spreads it over a Ray cluster)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InputError
from .arguments import say


def _boxes(path: str | None, sampling: str) -> dict[str, Any] | None:
    if sampling != "boxes":
        if path:
            raise InputError("--boxes is the prompts of --sampling boxes")
        return None
    if not path:
        raise InputError("--sampling boxes needs --boxes FILE.json: {\"file_name\": [[x0, y0, x1, y1], ...]}")
    try:
        doc = json.loads(open(path, encoding="utf-8").read())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read boxes from {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path} must map file names to [[x0, y0, x1, y1], ...]")
    return doc


def run(args: argparse.Namespace) -> int:
    from ..everything import labelling

    settings: dict[str, Any] = {
        "sampling": args.sampling, "mode": args.mode, "points_per_side": args.points_per_side,
        "points_per_batch": args.points_per_batch, "pred_iou_thresh": args.pred_iou_thresh,
        "stability_score_thresh": args.stability_score_thresh, "box_nms_thresh": args.box_nms_thresh,
        "crop_n_layers": args.crop_n_layers, "min_mask_region_area": args.min_mask_region_area}
    if args.high_score_thresh is not None:
        settings["high_score_thresh"] = args.high_score_thresh
    if args.sampling == "boxes":
        settings.pop("points_per_side")
    boxes = _boxes(args.boxes, args.sampling)
    common: dict[str, Any] = {"boxes": boxes, "progress": not args.no_progress, "say": say}
    if args.ray:
        from ..everything.ray_labelling import label_with_ray

        summary = label_with_ray(args.input, args.bundle, args.out, settings, address=args.address,
                                 workers=args.workers, cpus_per_worker=args.cpus_per_worker, **common)
    else:
        if args.address:
            raise InputError("--address is for --ray")
        summary = labelling.label(args.input, args.bundle, args.out, settings, threads=args.threads, **common)
    for failure in summary["failed"]:
        say(f"failed: {failure['file_name']}: {failure['error']}")
    print(json.dumps(summary))
    return 0


def add_parser(sub: Any) -> None:
    a = sub.add_parser("label", help="auto-label a folder or image list: COCO annotations (RLE masks)")
    a.add_argument("input", help="a folder of images (recursive) or a text file with one image path per line")
    a.add_argument("--bundle", required=True)
    a.add_argument("--out", required=True,
                   help="COCO JSON to write; <out>.parts/ keeps the resumable journal")
    a.add_argument("--sampling", choices=["grid", "hierarchical", "boxes"], default="grid")
    a.add_argument("--mode", choices=["exact", "fast"], default="exact",
                   help="exact: the official generator's results; fast: filters and NMS on low-res logits")
    a.add_argument("--boxes", help="sampling boxes: JSON {file_name: [[x0, y0, x1, y1], ...]}")
    a.add_argument("--points-per-side", type=int, default=32)
    a.add_argument("--points-per-batch", type=int, default=64)
    a.add_argument("--pred-iou-thresh", type=float, default=0.88)
    a.add_argument("--stability-score-thresh", type=float, default=0.95)
    a.add_argument("--box-nms-thresh", type=float, default=0.7)
    a.add_argument("--crop-n-layers", type=int, default=0)
    a.add_argument("--min-mask-region-area", type=int, default=0)
    a.add_argument("--high-score-thresh", type=float, help="hierarchical: first-pass coverage logit (8.5)")
    a.add_argument("--threads", type=int, help="runtime threads (single process)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.add_argument("--ray", action="store_true", help="run on Ray Data (pip install 'edgesam[ray]')")
    a.add_argument("--address", help="--ray: the cluster to join (e.g. ray://head:10001 or auto)")
    a.add_argument("--workers", type=int, default=2, help="--ray: actors, each loading the bundle once")
    a.add_argument("--cpus-per-worker", type=int, default=1,
                   help="--ray: CPUs (and runtime threads) per actor")
    a.set_defaults(fn=run)
