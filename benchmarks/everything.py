"""Segment everything per stage: grid 32x32 and hierarchical, exact and fast mode, per variant.

    python benchmarks/everything.py --threads 2                      # exports synthetic:0 bundles
    python benchmarks/everything.py --bundle-dir bundles --variants mobile_sam
    for v in mobile_sam edge_sam efficientvit_sam_l0; do      # one process each (runtime memory freed)
        python benchmarks/everything.py --bundle-dir bundles --variants $v --merge; done

For each variant (default ``mobile_sam edge_sam efficientvit_sam_l0``; a bundle is taken from
``--bundle-dir/<variant>`` when there, else exported with synthetic weights): the decoder's
ms per prompt at several prompt batches (the tuning of ``points_per_batch``), then
``AutomaticMaskGenerator`` on truck.jpg for each sampling x mode after a warm-up, with the
per-stage times of ``generator.stats`` (encoder, decoder, per-batch upscaled statistics and
filters, NMS, survivors' upscaling + RLE, the rest). For ``mobile_sam`` also the agreement of
fast mode with exact mode on both golden configurations of ``tests/golden/amg_mobile_sam.npz``
and on the demo picture (grid 32x32). Every number comes from one run, so ratios hold even
on a shared machine. Writes ``results/everything.json``, ``results/everything.md`` (the
tables of benchmarks/README.md) and ``results/everything.png`` (stacked bars, Pillow-drawn).

Synthetic weights give logits within about +-3 and stability scores near 0.02, so the
defaults meant for trained weights would drop every mask (stability filter) and mark nothing
as covered (TinySAM's ``high_score_thresh`` 8.5). The settings here turn the IoU and stability
filters off (as the golden ``amg.all`` configuration) and use the mask threshold (0) as the
hierarchical coverage threshold; box NMS 0.7.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk import AutomaticMaskGenerator, SamPredictor, load_bundle
from edge_sam_sdk.everything.agreement import compare
from edge_sam_sdk.visualize import demo_image, load_image

HERE = Path(__file__).resolve().parent
TRUCK = HERE.parents[1] / "shared" / "images" / "truck.jpg"
GOLDEN = HERE.parent / "tests" / "golden" / "amg_mobile_sam.npz"
STAGES = ("encoder_ms", "decoder_ms", "filter_ms", "nms_ms", "encode_ms", "other_ms")
COLOURS = {"encoder_ms": (90, 90, 90), "decoder_ms": (52, 120, 200), "filter_ms": (230, 140, 40),
           "nms_ms": (120, 180, 80), "encode_ms": (200, 70, 70), "other_ms": (170, 170, 170)}


def decoder_per_prompt(bundle: Any, image: np.ndarray, batches: list[int], runs: int = 2) -> dict[int, float]:
    """Decoder ms per prompt (best of ``runs``) at each prompt batch, grid points of ``image``."""
    pred = SamPredictor(bundle)
    pred.set_image(image)
    h, w = image.shape[:2]
    out = {}
    for b in batches:
        pts = np.random.default_rng(0).uniform([0, 0], [w, h], (b, 1, 2))
        best = float("inf")
        for _ in range(runs + 1):
            pred.predict_low_res(pts, np.ones((b, 1)))
            best = min(best, pred.timings["decoder_ms"])
        out[b] = round(best / b, 2)
    return out


def run(bundle: Any, image: np.ndarray, sampling: str, mode: str, args: argparse.Namespace,
        **kw: Any) -> tuple[dict[str, Any], list]:
    settings = {"points_per_side": args.points_per_side, "points_per_batch": args.points_per_batch,
                "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "high_score_thresh": 0.0,
                "output_mode": "coco_rle", "sampling": sampling, "mode": mode}
    settings.update(kw)
    gen = AutomaticMaskGenerator(bundle, **settings)
    t0 = time.perf_counter()
    records = gen.generate(image)
    stats = dict(gen.stats, time_s=round(time.perf_counter() - t0, 2))
    stats["other_ms"] = stats["postprocess_ms"] - stats["filter_ms"] - stats["nms_ms"] - stats["encode_ms"]
    n = max(stats["decoder_prompts"], 1)
    stats["decoder_ms_per_prompt"] = round(stats["decoder_ms"] / n, 2)
    stats["postprocess_ms_per_prompt"] = round(stats["postprocess_ms"] / n, 2)
    stats["post_over_decoder"] = round(stats["postprocess_ms"] / max(stats["decoder_ms"], 1e-9), 3)
    for key in [k for k in stats if k.endswith("_ms")]:
        stats[key] = round(stats[key], 1)
    return stats, records


def golden_agreement(bundle: Any, truck: np.ndarray) -> dict[str, Any]:
    z = np.load(GOLDEN)
    out = {}
    for name, case in json.loads(str(z["meta"]))["cases"].items():
        case = dict(case)
        case.pop("count")
        exact = AutomaticMaskGenerator(bundle, mode="exact", **case).generate(truck)
        fast = AutomaticMaskGenerator(bundle, mode="fast", **case).generate(truck)
        out[name] = compare(exact, fast)
        print(name, out[name], flush=True)
    return out


def filtered_agreement(bundle: Any, image: np.ndarray, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fast against exact with the filters acting: the stability threshold at the median of the
    exact run's scores (synthetic weights score near 0.02), box NMS 0.9, grid 16x16."""
    kw: dict[str, Any] = {"points_per_side": 16, "box_nms_thresh": 1.0}
    plain = AutomaticMaskGenerator(bundle, output_mode="uncompressed_rle", pred_iou_thresh=0.0,
                                   stability_score_thresh=0.0, **kw).generate(image)
    thresh = float(np.median([r["stability_score"] for r in plain]))
    kw.update(box_nms_thresh=0.9, stability_score_thresh=thresh, pred_iou_thresh=0.0)
    exact = AutomaticMaskGenerator(bundle, output_mode="uncompressed_rle", mode="exact", **kw).generate(image)
    fast = AutomaticMaskGenerator(bundle, output_mode="uncompressed_rle", mode="fast", **kw).generate(image)
    out = {f"{name} grid 16x16, stability >= {thresh:.4f} (median), box NMS 0.9": compare(exact, fast)}
    print(out, flush=True)
    return out


def bar_chart(results: dict[str, Any], path: Path) -> None:
    """Stacked horizontal bars, seconds per image by stage, one per variant x sampling x mode."""
    from PIL import Image, ImageDraw

    rows = [(f"{v} {s} {m}", r) for v, per in results.items() for s, modes in per["runs"].items()
            for m, r in modes.items()]
    longest = max(sum(r[k] for k in STAGES) for _, r in rows) / 1e3
    width, left, bar_h, top = 1100, 330, 22, 40
    img = Image.new("RGB", (width, top + len(rows) * (bar_h + 8) + 60), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), "segment everything, truck.jpg, seconds per image by stage (one run)", fill="black")
    scale = (width - left - 80) / longest
    for i, (label, r) in enumerate(rows):
        y = top + i * (bar_h + 8)
        d.text((10, y + 5), label, fill="black")
        x = float(left)
        for k in STAGES:
            w = max(r[k], 0.0) / 1e3 * scale
            d.rectangle([x, y, x + w, y + bar_h], fill=COLOURS[k])
            x += w
        d.text((x + 5, y + 5), f"{r['time_s']:.1f} s", fill="black")
    y = top + len(rows) * (bar_h + 8) + 15
    x = 10
    for k in STAGES:
        d.rectangle([x, y, x + 14, y + 14], fill=COLOURS[k])
        d.text((x + 20, y + 2), k[:-3], fill="black")
        x += 150
    path.parent.mkdir(exist_ok=True)
    img.save(path)


def markdown(out: dict[str, Any]) -> str:
    lines = ["| variant | sampling | mode | prompts | masks | time | encoder | decoder (ms/prompt) | "
             "filters | NMS | survivors' RLE | other | post / decoder per prompt |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for v, per in out["results"].items():
        for s, modes in per["runs"].items():
            for m, r in modes.items():
                lines.append(f"| `{v}` | {s} | {m} | {r['decoder_prompts']} | {r['masks']} | "
                             f"{r['time_s']:.1f} s | {r['encoder_ms'] / 1e3:.1f} s | "
                             f"{r['decoder_ms'] / 1e3:.1f} s "
                             f"({r['decoder_ms_per_prompt']:.1f}) | {r['filter_ms'] / 1e3:.1f} s | "
                             f"{r['nms_ms'] / 1e3:.2f} s | {r['encode_ms'] / 1e3:.2f} s | "
                             f"{r['other_ms'] / 1e3:.2f} s | {r['post_over_decoder']:.2f} |")
    lines += ["", "| variant | decoder ms per prompt at batch " +
              " / ".join(str(b) for b in out["batches"]) + " |", "| --- | --- |"]
    for v, per in out["results"].items():
        per_batch = " / ".join(f"{x:.1f}" for x in per["decoder_ms_per_prompt"].values())
        lines.append(f"| `{v}` | {per_batch} |")
    if out.get("agreement"):
        lines += ["", "| case | exact records | fast records | matched | mask IoU min / mean | equal boxes |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, a in out["agreement"].items():
            lines.append(f"| {name} | {a['reference']} | {a['candidate']} | {a['matched']} "
                         f"({a['share_matched']:.1%}) | {a['mask_iou_min']} / {a['mask_iou_mean']} | "
                         f"{a['bbox_equal']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", default=["mobile_sam", "edge_sam", "efficientvit_sam_l0"])
    ap.add_argument("--bundle-dir", help="folder with one bundle per variant (default: export synthetic:0)")
    ap.add_argument("--image", default=str(TRUCK))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--points-per-batch", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--samplings", nargs="+", default=["grid", "hierarchical"])
    ap.add_argument("--modes", nargs="+", default=["exact", "fast"])
    ap.add_argument("--no-agreement", action="store_true")
    ap.add_argument("--merge", action="store_true",
                    help="add these variants to results/everything.json (one process per variant)")
    ap.add_argument("--only-agreement", action="store_true",
                    help="mobile_sam's fast-vs-exact agreement alone (results/everything_agreement.json)")
    args = ap.parse_args()
    image = load_image(args.image)
    if args.only_agreement:
        path = Path(args.bundle_dir) / "mobile_sam" if args.bundle_dir else None
        if path is None or not (path / "manifest.json").exists():
            raise SystemExit("--only-agreement needs --bundle-dir with a mobile_sam bundle")
        bundle = load_bundle(path, threads=args.threads)
        agree = golden_agreement(bundle, image)
        agree.update(filtered_agreement(bundle, image, "truck", args))
        agree.update(filtered_agreement(bundle, demo_image(), "demo picture", args))
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "everything_agreement.json").write_text(json.dumps(agree, indent=2) + "\n")
        return
    results: dict[str, Any] = {}
    agreement: dict[str, Any] = {}
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            path = Path(args.bundle_dir or tmp) / variant
            if not (path / "manifest.json").exists():
                from edge_sam_sdk.exporters.export import export_bundle

                export_bundle(variant, "synthetic:0", path, progress=print)
            bundle = load_bundle(path, threads=args.threads)
            AutomaticMaskGenerator(bundle, points_per_side=2, pred_iou_thresh=0.0,
                                   stability_score_thresh=0.0).generate(image[:256, :256].copy())  # warm-up
            per: dict[str, Any] = {"decoder_ms_per_prompt": decoder_per_prompt(bundle, image, args.batches),
                                   "runs": {}}
            print(variant, "decoder ms/prompt by batch", per["decoder_ms_per_prompt"], flush=True)
            for sampling in args.samplings:
                per["runs"][sampling] = {}
                recs = {}
                for mode in args.modes:
                    stats, recs[mode] = run(bundle, image, sampling, mode, args)
                    per["runs"][sampling][mode] = stats
                    print(variant, sampling, mode, json.dumps(stats), flush=True)
                if variant == "mobile_sam" and {"exact", "fast"} <= set(recs) and not args.no_agreement:
                    agreement[f"truck {sampling} 32x32, box NMS 0.7"] = compare(recs["exact"], recs["fast"])
            if variant == "mobile_sam" and not args.no_agreement:
                agreement.update(golden_agreement(bundle, image))
                demo = demo_image()
                exact = run(bundle, demo, "grid", "exact", args, box_nms_thresh=1.0)[1]
                fast = run(bundle, demo, "grid", "fast", args, box_nms_thresh=1.0)[1]
                agreement["demo picture grid 32x32, no NMS"] = compare(exact, fast)
            results[variant] = per
    out = {
        "image": Path(args.image).name, "image_size": list(image.shape[:2]), "threads": args.threads,
        "batches": args.batches, "bundles": "synthetic:0" if not args.bundle_dir else args.bundle_dir,
        "settings": {"points_per_side": args.points_per_side, "points_per_batch": args.points_per_batch,
                     "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "high_score_thresh": 0.0,
                     "box_nms_thresh": 0.7},
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version()},
        "wall_s": round(time.time() - t_start, 1), "results": results, "agreement": agreement,
    }
    (HERE / "results").mkdir(exist_ok=True)
    previous = HERE / "results" / "everything.json"
    if args.merge and previous.exists():  # one process per variant: the runtime's memory is freed between
        old = json.loads(previous.read_text())
        out["results"] = dict(old.get("results", {}), **out["results"])
        out["agreement"] = dict(old.get("agreement", {}), **out["agreement"])
        out["wall_s"] = round(out["wall_s"] + old.get("wall_s", 0.0), 1)
    previous.write_text(json.dumps(out, indent=2) + "\n")
    (HERE / "results" / "everything.md").write_text(markdown(out))
    bar_chart(out["results"], HERE / "results" / "everything.png")  # every merged variant
    print(markdown(out))


if __name__ == "__main__":
    main()
