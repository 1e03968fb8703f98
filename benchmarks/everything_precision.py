"""Segment everything over reduced-precision bundles: speed per stage and records against fp32.

    python benchmarks/everything_precision.py --bundles bundles/mobile_sam bundles/mobile_sam_int8

The first bundle is the reference (e.g. the ONNX fp32 bundle); every other one (a TFLite int8
bundle has a dynamic-int8 decoder, an ONNX int8 bundle an int8 encoder) runs the same
``AutomaticMaskGenerator`` jobs on truck.jpg: hierarchical and grid 32x32 sampling in exact
mode with box NMS 0.7 (time per stage, as ``everything.py``), and the golden ``amg.all``
configuration (8x8 grid, filters off, no NMS: all 192 masks) whose records are matched with
the reference's (``edge_sam_sdk.everything.agreement.compare``: same prompt, mask IoU).
Writes ``results/everything_precision.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from everything import GOLDEN, HERE, TRUCK, decoder_per_prompt, run

from edge_sam_sdk import AutomaticMaskGenerator, load_bundle
from edge_sam_sdk.everything.agreement import compare
from edge_sam_sdk.visualize import load_image


def describe(path: Path) -> str:
    m = json.loads((path / "manifest.json").read_text())
    return f"{m.get('target', '?')} {m.get('precision', 'fp32')}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", nargs="+", required=True, help="reference bundle first")
    ap.add_argument("--image", default=str(TRUCK))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--points-per-batch", type=int, default=64)
    args = ap.parse_args()
    image = load_image(args.image)
    case = dict(json.loads(str(np.load(GOLDEN)["meta"]))["cases"]["amg.all"])
    case.pop("count")
    out: dict[str, Any] = {"image": Path(args.image).name, "threads": args.threads, "bundles": {}}
    reference: list[dict[str, Any]] | None = None
    for path in map(Path, args.bundles):
        bundle = load_bundle(path, threads=args.threads)
        AutomaticMaskGenerator(bundle, points_per_side=2, pred_iou_thresh=0.0,
                               stability_score_thresh=0.0).generate(image[:256, :256].copy())  # warm-up
        # The prompt batches the jobs use, run once first (onnxruntime's first run of a shape
        # allocates: without this the first job's decoder measured 2x slower).
        row: dict[str, Any] = {"kind": describe(path),
                               "decoder_ms_per_prompt": decoder_per_prompt(bundle, image, [16, 32, 64], 1)}
        for sampling in ("hierarchical", "grid"):
            row[sampling] = run(bundle, image, sampling, "exact", args)[0]
            print(path.name, sampling, json.dumps(row[sampling]), flush=True)
        records = AutomaticMaskGenerator(bundle, mode="exact", **case).generate(image)
        if reference is None:
            reference = records
        else:
            row["amg.all_vs_reference"] = compare(reference, records)
            print(path.name, "amg.all", row["amg.all_vs_reference"], flush=True)
        out["bundles"][str(path)] = row
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "everything_precision.json").write_text(json.dumps(out, indent=2) + "\n")
    print("| bundle | sampling | time | decoder (ms/prompt) | filters | amg.all records matched "
          "| mask IoU min / mean |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for path, row in out["bundles"].items():
        agree = row.get("amg.all_vs_reference")
        match = "reference" if agree is None else f"{agree['matched']} / {agree['reference']}"
        iou = "-" if agree is None else f"{agree['mask_iou_min']} / {agree['mask_iou_mean']}"
        for sampling in ("hierarchical", "grid"):
            s = row[sampling]
            print(f"| `{Path(path).name}` ({row['kind']}) | {sampling} | {s['time_s']} s | "
                  f"{s['decoder_ms'] / 1000:.1f} s ({s['decoder_ms_per_prompt']}) | "
                  f"{s['filter_ms'] / 1000:.1f} s | {match} | {iou} |")


if __name__ == "__main__":
    main()
