"""The ``edgesam`` command line: list, export, predict, everything, verify, bench, vectors, demo,
trt-check, trt-adopt.

Errors print one line (``edgesam: error: ...``) and exit with status 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .cli_export import add_export_parser
from .cli_export import say as _say
from .errors import EdgeSamError, InputError


def _floats(text: str, n: int, what: str) -> list[float]:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated numbers, got {text!r}")
    return values


def _point(text: str) -> list[float]:
    x, y, label = _floats(text, 3, "--point X,Y,LABEL")
    if label not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"point label must be 1 (foreground) or 0 (background): {text!r}")
    return [x, y, label]


def _box(text: str) -> list[float]:
    return _floats(text, 4, "--box X0,Y0,X1,Y1")


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import get_variant, list_variants

    rows = [("variant", "family", "input", "decoder", "targets", "checkpoint", "license")]
    for name in list_variants():
        s = get_variant(name)
        rows.append((name, s.family, str(s.processing.input_size), s.decoder_kind, ",".join(s.targets),
                     ",".join(s.checkpoint.files), s.license))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0


def _predict(bundle_path: str, image: np.ndarray, points: list[list[float]], boxes: list[list[float]],
             multimask: bool, backend: str, threads: int | None,
             stability: bool = False) -> tuple[Any, ...]:
    from .bundle import load_bundle
    from .predictor import SamPredictor

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


def cmd_predict(args: argparse.Namespace) -> int:
    from .visualize import load_image, overlay, save_png

    if not args.point and not args.box:
        raise InputError("give at least one prompt: --point X,Y,LABEL or --box X0,Y0,X1,Y1")
    image = load_image(args.image)
    masks, scores, low, timings, extra = _predict(args.bundle, image, args.point or [], args.box or [],
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


def _read_boxes(path: str) -> list[list[float]]:
    """Boxes from a JSON file: ``[[x0, y0, x1, y1], ...]`` or ``{"boxes": [...]}``."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"boxes file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} as JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("boxes")
    try:
        boxes = [[float(v) for v in box] for box in data]
    except (TypeError, ValueError):
        boxes = []
    if not boxes or any(len(b) != 4 for b in boxes):
        raise InputError(f"{path} must hold boxes: [[x0, y0, x1, y1], ...] or {{\"boxes\": [...]}}")
    return boxes


def cmd_everything(args: argparse.Namespace) -> int:
    from .amg import AutomaticMaskGenerator
    from .bundle import load_bundle
    from .mask_ops import rle_to_mask
    from .visualize import color_overlay, load_image, save_png

    boxes = (_read_boxes(args.boxes) if args.boxes else []) + (args.box or [])
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
                          "sampling": args.sampling, "progress": _say}
    if args.high_score_thresh is not None:
        kw["high_score_thresh"] = args.high_score_thresh
    generator = AutomaticMaskGenerator(bundle, **kw)
    h, w = image.shape[:2]
    _say(f"segmenting everything in {args.image} ({w}x{h}) with {bundle.variant}, sampling {args.sampling}")
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


def cmd_verify(args: argparse.Namespace) -> int:
    from .bundle import load_bundle
    from .exporters.verify import format_table, verify_bundle
    from .visualize import demo_image, load_image

    bundle = load_bundle(args.bundle, backend=args.backend)
    image = load_image(args.image) if args.image else demo_image()
    _say(f"verifying {args.bundle} ({bundle.variant}, {bundle.manifest['target']}) against "
         f"torch with {args.checkpoint}")
    name = Path(args.image).name if args.image else "demo_image"
    if bundle.manifest.get("precision", "fp32") != "fp32":
        _say(f"{bundle.manifest['precision']} bundle: exporting an fp32 reference from the same "
             "checkpoint for the quality report")
    report = verify_bundle(bundle, args.checkpoint, image, image_name=name, progress=_say)
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_bundle, format_bench
    from .bundle import load_bundle
    from .visualize import load_image

    options: dict[str, Any] = {"threads": args.threads} if args.threads else {}
    bundle = load_bundle(args.bundle, backend=args.backend, **options)
    _say(f"benchmarking {args.bundle}: {args.runs} runs after {args.warmup} warm-up, "
         "fp32 matmul peak measured before and after")
    image = load_image(args.image) if args.image else None
    result = bench_bundle(bundle, runs=args.runs, warmup=args.warmup, threads=args.threads, image=image)
    print(format_bench(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def cmd_vectors(args: argparse.Namespace) -> int:
    from .registry import get_variant
    from .vectors import VARIANTS, write_vectors

    variants = tuple(args.variant) if args.variant else VARIANTS
    for v in variants:
        get_variant(v)  # unknown names fail here, before anything is written
    out = write_vectors(args.out, variants, large=not args.small, overwrite=args.overwrite,
                        progress=lambda m: _say(f"vectors: {m}"))
    cases = len(json.loads((out / "index.json").read_text())["cases"])
    print(json.dumps({"vectors": str(out), "cases": cases}))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .exporters.export import export_bundle
    from .visualize import demo_image, overlay, save_png

    out = Path(args.out)
    bundle = out / f"{args.variant}_onnx"
    if not (bundle / "manifest.json").exists() or args.checkpoint != "synthetic:0":
        export_bundle(args.variant, args.checkpoint, bundle, overwrite=True, progress=_say)
    image = demo_image()
    save_png(image, out / "demo_image.png")
    h, w = image.shape[:2]
    points = [[0.3 * w, 0.55 * h, 1.0], [0.66 * w, 0.4 * h, 0.0]]
    masks, scores, _, timings, _ = _predict(str(bundle), image, points, [], True, "auto", None)
    best = int(np.argmax(scores))
    pts = np.array(points)
    save_png(overlay(image, masks[[best]], pts[:, :2], pts[:, 2]), out / "demo_overlay.png")
    summary = {"bundle": str(bundle), "overlay": str(out / "demo_overlay.png"),
               "iou_predictions": [round(float(s), 4) for s in scores],
               "timings_ms": {k: round(v, 1) for k, v in timings.items()}}
    (out / "demo_timings.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if args.checkpoint.startswith("synthetic:"):
        _say("note: synthetic weights give meaningless masks; pass --checkpoint with an official "
             "file for real segmentation")
    return 0


def cmd_trt_check(args: argparse.Namespace) -> int:
    from .bundle import read_manifest
    from .exporters.tensorrt_check import check_file, format_report

    path = Path(args.path)
    if path.suffix == ".onnx":
        files = {path.name: path}
    else:
        graphs = read_manifest(path)["graphs"]
        files = {n: path / g.get("onnx_file", g["file"]) for n, g in graphs.items()}
    reports = {name: check_file(f) for name, f in files.items()}
    for name, report in reports.items():
        print(format_report(report, name))
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    return 0 if all(r["ok"] for r in reports.values()) else 1


def cmd_trt_adopt(args: argparse.Namespace) -> int:
    from .runtimes import backend_class

    backend_class("tensorrt")  # a clear error when tensorrt or pycuda is missing
    from .runtimes.tensorrt_backend import adopt_engines

    facts = adopt_engines(args.bundle)
    _say(f"recorded the engines of {args.bundle}: TensorRT {facts['version']} on {facts['gpu']['name']} "
         f"(sm {facts['gpu']['compute_capability']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgesam", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--version", action="version", version=f"edgesam {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list registered variants and their targets").set_defaults(fn=cmd_list)

    add_export_parser(sub)

    r = sub.add_parser("predict", help="segment an image with a bundle, write an overlay PNG")
    r.add_argument("bundle")
    r.add_argument("--image", required=True)
    r.add_argument("--point", type=_point, action="append", help="X,Y,LABEL (1 fg, 0 bg); repeatable")
    r.add_argument("--box", type=_box, action="append", help="X0,Y0,X1,Y1 pixels; repeatable")
    r.add_argument("--multimask", action="store_true", help="3 candidate masks (best one drawn)")
    r.add_argument("--all-masks", action="store_true", help="draw every returned mask")
    r.add_argument("--stability-score", action="store_true",
                   help="rank masks by stability score instead of predicted IoU (EdgeSAM's advice)")
    r.add_argument("--out", required=True, help="overlay PNG to write")
    r.add_argument("--save-npz", help="also save masks, scores and low-res logits")
    r.add_argument("--backend", default="auto")
    r.add_argument("--threads", type=int)
    r.set_defaults(fn=cmd_predict)

    a = sub.add_parser("everything", help="segment everything: every mask of an image, overlay PNG + JSON")
    a.add_argument("bundle")
    a.add_argument("--image", required=True)
    a.add_argument("--sampling", choices=["grid", "hierarchical", "boxes"], default="grid",
                   help="point grid (segment-anything), hierarchical (TinySAM) or given boxes (MobileSAMv2)")
    a.add_argument("--boxes", help="sampling boxes: JSON file [[x0, y0, x1, y1], ...] in pixels")
    a.add_argument("--box", type=_box, action="append", help="sampling boxes: X0,Y0,X1,Y1; repeatable")
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
    a.set_defaults(fn=cmd_everything)

    v = sub.add_parser("verify", help="parity of a bundle against the torch model")
    v.add_argument("bundle")
    v.add_argument("--checkpoint", required=True, help="checkpoint file, or synthetic:SEED")
    v.add_argument("--image", help="image for the end-to-end check (default: built-in demo image)")
    v.add_argument("--backend", default="auto")
    v.add_argument("--json", help="write the report as JSON")
    v.set_defaults(fn=cmd_verify)

    b = sub.add_parser("bench", help="encoder and per-prompt decoder latency, GFLOPs, floor ratios")
    b.add_argument("bundle")
    b.add_argument("--runs", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--threads", type=int, help="intra-op threads (and the peak probe's); default: all cores")
    b.add_argument("--image", help="image the per-prompt masks are upscaled to (default: the demo image)")
    b.add_argument("--backend", default="auto")
    b.add_argument("--json", help="write results as JSON")
    b.set_defaults(fn=cmd_bench)

    t = sub.add_parser("vectors", help="write processing test vectors for ports (Kotlin, Swift, ...)")
    t.add_argument("--out", required=True, help="folder to write (index.json + .npy arrays)")
    t.add_argument("--variant", action="append", help="variant whose processing to cover; repeatable "
                   "(default: a set that uses every processing rule)")
    t.add_argument("--small", action="store_true", help="skip the large (shrinking) images")
    t.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    t.set_defaults(fn=cmd_vectors)

    c = sub.add_parser("trt-check", help="can TensorRT 8.6-10.x take a bundle's (or an .onnx file's) graphs?")
    c.add_argument("path", help="bundle folder or .onnx file")
    c.add_argument("--json", help="write the reports as JSON")
    c.set_defaults(fn=cmd_trt_check)

    a = sub.add_parser("trt-adopt", help="record engines rebuilt on this device (trtexec.sh) in the manifest")
    a.add_argument("bundle")
    a.set_defaults(fn=cmd_trt_adopt)

    d = sub.add_parser("demo", help="export a variant and segment the built-in demo image")
    d.add_argument("--variant", default="mobile_sam")
    d.add_argument("--checkpoint", default="synthetic:0")
    d.add_argument("--out", default="edgesam_demo")
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except EdgeSamError as exc:
        print(f"edgesam: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgesam: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
