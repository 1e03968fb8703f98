"""Segment everything on one image: grid 32x32 against hierarchical (TinySAM) sampling.

    python benchmarks/everything.py --threads 2

Exports the variant with synthetic weights (or takes ``--bundle``), then runs
``AutomaticMaskGenerator`` on truck.jpg once per sampling mode after a warm-up, timing the
whole ``generate`` call (encoder included) and counting decoder prompts and runs. Writes
``benchmarks/results/everything.json`` and the hierarchical result's overlay
``benchmarks/results/everything_hierarchical.png`` (at most 600 px a side).

Synthetic weights give logits within about +-3 and stability scores near 0.02, so the
defaults meant for trained weights would drop every mask (stability filter) and mark nothing
as covered (TinySAM's ``high_score_thresh`` 8.5). The defaults here turn the IoU and stability
filters off (as the golden ``amg.all`` configuration) and use the mask threshold (0) as
the hierarchical coverage threshold; pass other values for trained weights.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk import AutomaticMaskGenerator, load_bundle
from edge_sam_sdk.everything.mask_ops import rle_to_mask
from edge_sam_sdk.exporters.export import export_bundle
from edge_sam_sdk.visualize import color_overlay, load_image, save_png

HERE = Path(__file__).resolve().parent
TRUCK = HERE.parents[1] / "shared" / "images" / "truck.jpg"


def run_mode(bundle: Any, image: np.ndarray, sampling: str, args: argparse.Namespace) -> tuple[dict, list]:
    gen = AutomaticMaskGenerator(bundle, points_per_side=args.points_per_side,
                                 points_per_batch=args.points_per_batch, pred_iou_thresh=args.pred_iou_thresh,
                                 stability_score_thresh=args.stability_score_thresh,
                                 high_score_thresh=args.high_score_thresh, output_mode="uncompressed_rle",
                                 sampling=sampling, progress=print)
    t0 = time.perf_counter()
    records = gen.generate(image)
    wall = time.perf_counter() - t0
    stats = dict(gen.stats)
    stats["time_s"] = round(wall, 2)
    stats["decoder_ms_per_prompt"] = round(stats["decoder_ms"] / max(stats["decoder_prompts"], 1), 1)
    stats["postprocess_ms_per_prompt"] = round(stats["postprocess_ms"] / max(stats["decoder_prompts"], 1), 1)
    for key in ("time_ms", "encoder_ms", "decoder_ms", "postprocess_ms"):
        stats[key] = round(stats[key], 1)
    return stats, records


def save_overlay(image: np.ndarray, records: list, path: Path, max_side: int = 600) -> None:
    """Each mask in its own colour, largest first, saved at most ``max_side`` px wide/high."""
    from PIL import Image

    largest_first = sorted(records, key=lambda r: -r["area"])
    pic = Image.fromarray(color_overlay(image, (rle_to_mask(r["segmentation"]) for r in largest_first)))
    pic.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    save_png(np.asarray(pic), path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="mobile_sam")
    ap.add_argument("--bundle", help="an existing bundle folder (default: export synthetic:0)")
    ap.add_argument("--image", default=str(TRUCK))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--points-per-batch", type=int, default=64)
    ap.add_argument("--pred-iou-thresh", type=float, default=0.0)
    ap.add_argument("--stability-score-thresh", type=float, default=0.0)
    ap.add_argument("--high-score-thresh", type=float, default=0.0)
    ap.add_argument("--modes", nargs="+", default=["grid", "hierarchical"])
    args = ap.parse_args()
    image = load_image(args.image)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.bundle or export_bundle(args.variant, "synthetic:0", Path(tmp) / "b", progress=print)
        bundle = load_bundle(path, threads=args.threads)
        warm = AutomaticMaskGenerator(bundle, points_per_side=2, pred_iou_thresh=0.0,
                                      stability_score_thresh=0.0)
        warm.generate(image[:256, :256].copy())  # session start-up, not timed
        results: dict[str, Any] = {}
        for mode in args.modes:
            stats, records = run_mode(bundle, image, mode, args)
            results[mode] = stats
            print(mode, json.dumps(stats))
            if mode == "hierarchical":
                save_overlay(image, records, HERE / "results" / "everything_hierarchical.png")
    out = {
        "variant": args.variant, "bundle": "synthetic:0" if not args.bundle else str(args.bundle),
        "image": Path(args.image).name, "image_size": list(image.shape[:2]), "threads": args.threads,
        "settings": {k: getattr(args, k) for k in ("points_per_side", "points_per_batch", "pred_iou_thresh",
                                                   "stability_score_thresh", "high_score_thresh")},
        "machine": {"processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "results": results,
    }
    if "grid" in results and "hierarchical" in results:
        out["prompt_ratio_grid_over_hierarchical"] = round(
            results["grid"]["decoder_prompts"] / results["hierarchical"]["decoder_prompts"], 2)
        out["time_ratio_grid_over_hierarchical"] = round(
            results["grid"]["time_s"] / results["hierarchical"]["time_s"], 2)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "everything.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
