"""Measure a variant's ONNX bundle against our torch model (eager) in one run.

    python benchmarks/compare_torch_onnx.py --variant mobile_sam --runs 10 --threads 2

Writes ``benchmarks/results/<variant>.json`` and a bar chart ``<variant>.png``. Both
engines run the same graphs (encoder once per image, decoder once per prompt) on the
same inputs, with the same thread count, after warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np

from edge_sam_sdk.bench import bench_bundle
from edge_sam_sdk.bundle import load_bundle
from edge_sam_sdk.exporters.export import export_bundle, torch_bundle

HERE = Path(__file__).resolve().parent


def bar_chart(rows: list[tuple[str, float]], title: str, path: Path) -> None:
    """A minimal horizontal bar chart drawn with Pillow (no plotting dependency)."""
    from PIL import Image, ImageDraw

    width, bar_h, left = 760, 34, 230
    img = Image.new("RGB", (width, 60 + bar_h * len(rows) + 20), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), title, fill="black")
    top = max(v for _, v in rows)
    for i, (label, value) in enumerate(rows):
        y = 50 + i * bar_h
        w = int((width - left - 90) * value / top)
        d.text((10, y + 8), label, fill="black")
        d.rectangle([left, y + 4, left + w, y + bar_h - 6], fill=(30, 144, 255) if "onnx" in label
                    else (255, 140, 0))
        d.text((left + w + 6, y + 8), f"{value:.1f} ms", fill="black")
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="mobile_sam")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_bundle(args.variant, "synthetic:0", Path(tmp) / "b", progress=print)
        onnx = bench_bundle(load_bundle(path, threads=args.threads), runs=args.runs)
    torch_res = bench_bundle(torch_bundle(args.variant, "synthetic:0", threads=args.threads), runs=args.runs)
    result = {
        "variant": args.variant, "threads": args.threads, "runs": args.runs,
        "machine": {"processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "onnxruntime": onnx, "torch_eager": torch_res,
        "ratio_torch_over_onnx": {
            g: torch_res[f"{g}_ms"]["median"] / onnx[f"{g}_ms"]["median"] for g in ("encoder", "decoder")},
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.variant}.json").write_text(json.dumps(result, indent=2))
    rows = [(f"{eng} {g}", r[f"{g}_ms"]["median"]) for g in ("encoder", "decoder")
            for eng, r in (("onnx", onnx), ("torch", torch_res))]
    bar_chart(rows, f"{args.variant}: median latency, {args.threads} threads (lower is better)",
              out / f"{args.variant}.png")
    print(json.dumps(result["ratio_torch_over_onnx"], indent=2))
    print(np.round([v for _, v in rows], 2))


if __name__ == "__main__":
    main()
