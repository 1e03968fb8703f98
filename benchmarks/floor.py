"""Floor ratios of the ONNX fp32 bundles next to torch eager, in one run (issue 11's table).

    python benchmarks/floor.py --variants mobile_sam edge_sam efficientvit_sam_l0 sam_vit_b \
        --runs 20 --threads 2

Per variant (synthetic weights): export the ONNX fp32 bundle (GFLOPs are counted at export
into its manifest), run ``edgesam bench``'s measurement on it (``edge_sam_sdk.bench``:
encoder graph; one click through ``SamPredictor.predict`` with host post-processing to the
600x900 demo image; 16 clicks in one ``predict_batch``; this machine's fp32 matmul peak
before and after), then the same measurement on our torch modules (eager, same threads).
Writes ``results/floor.json``, ``results/floor.md``, ``results/floor.png`` and the table
between the ``floor-table`` markers of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from plain_decoder import batch_vs_plain
from readme_table import write_between_markers

from edge_sam_sdk.bench import bench_bundle, floor_ratio
from edge_sam_sdk.bundle import load_bundle
from edge_sam_sdk.exporters.export import export_bundle, torch_bundle

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
BAR = 1.3  # the bar for encoder and decoder floor ratios


def measure(variant: str, runs: int, threads: int) -> dict[str, Any]:
    big = variant.startswith("sam_vit")
    enc_runs = max(3, runs // 4) if big else runs
    with tempfile.TemporaryDirectory() as tmp:
        path = export_bundle(variant, "synthetic:0", Path(tmp) / variant, progress=print)
        bundle = load_bundle(path, threads=threads)
        onnx = bench_bundle(bundle, runs=runs, encoder_runs=enc_runs, threads=threads)
        plain = batch_vs_plain(variant, bundle, threads, runs)
        del bundle
    eager = bench_bundle(torch_bundle(variant, "synthetic:0", threads=threads), runs=max(3, runs // 2),
                         encoder_runs=max(2, enc_runs // 2), threads=threads, peak=False)
    keys = ("encoder_ms", "decoder_ms", "decoder_graph_ms", "decoder_batch_ms")
    return {"variant": variant, "onnx": onnx, "plain_decoder": plain,
            "torch_eager": {k: eager[k] for k in keys},
            "speedup_vs_eager": {g: eager[f"{g}_ms"]["median"] / onnx[f"{g}_ms"]["median"]
                                 for g in ("encoder", "decoder")}}


def batch_ratio(r: dict[str, Any]) -> float | None:
    """Floor ratio of one prompt's share of a 16-prompt batch."""
    o = r["onnx"]
    per = o["decoder_batch_ms"]["median"] / o["decoder_batch_ms"]["batch"]
    return floor_ratio(per, o["decoder_gflops"], o["peak_gflops"])


def markdown(rows: list[dict[str, Any]], threads: int) -> str:
    lines = ["| variant | encoder ms | GFLOPs | floor ratio | vs eager | decoder ms / prompt "
             "(graph) | GFLOPs | floor ratio | vs eager | batch 16: ms / prompt | floor ratio | "
             "16 singles / batch | plain decoder ms | 16 plain / batch (graphs) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        o, s = r["onnx"], r["speedup_vs_eager"]
        b, p = o["decoder_batch_ms"], r["plain_decoder"]
        lines.append(
            f"| `{r['variant']}` | {o['encoder_ms']['median']:.0f} | {o['encoder_gflops']:.1f} "
            f"| {o['encoder_floor_ratio']:.2f} | {s['encoder']:.2f}x "
            f"| {o['decoder_ms']['median']:.1f} ({o['decoder_graph_ms']['median']:.1f}) "
            f"| {o['decoder_gflops']:.2f} | {o['decoder_floor_ratio']:.2f} | {s['decoder']:.2f}x "
            f"| {b['median'] / b['batch']:.1f} | {batch_ratio(r):.2f} | {o['decoder_batch_speedup']:.2f}x "
            f"| {p['plain_ms']['median']:.1f} | {p['plain_singles_over_batch']:.2f}x |")
    peaks = [r["onnx"]["peak_gflops"] for r in rows]
    lines += ["", f"onnxruntime CPU provider, {threads} threads, this project's 2-core x86-64 VM (shared); "
              f"fp32 matmul peak measured per variant in the same run: {min(peaks):.0f}-{max(peaks):.0f} "
              "GFLOP/s (the higher of numpy's OpenBLAS and onnxruntime's MLAS on 2048x2048). Floor ratio = "
              "median time / (GFLOPs / peak); GFLOPs count matrix products at 2 FLOPs per multiply-add. "
              "Decoder: one click, multimask, host token selection + upscaling to 600x900 + threshold "
              "included; the graph alone in brackets. `vs eager`: torch eager time / ONNX time. "
              "Batch 16: 16 clicks in one `predict_batch`; `16 singles / batch`: 16 `predict` calls / one "
              "`predict_batch` call. `plain decoder`: SAM's decoder computed the official way, every "
              "projection per prompt (`benchmarks/plain_decoder.py`, same weights and session settings), "
              "one prompt; `16 plain / batch`: 16 of those runs / one 16-prompt run of the bundle's decoder "
              "graph. Measured by `benchmarks/floor.py`."]
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars of floor ratios per variant with the 1.3 bar, drawn with Pillow."""
    from PIL import Image, ImageDraw

    series = (("encoder", (30, 144, 255)), ("decoder", (255, 140, 0)), ("batch 16", (60, 170, 90)))
    values = [[r["onnx"]["encoder_floor_ratio"], r["onnx"]["decoder_floor_ratio"], batch_ratio(r)]
              for r in rows]
    top = max(max(v for v in vs if v) for vs in values) * 1.1
    width, height, left, base = 120 + 190 * len(rows), 420, 60, 360
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), "floor ratio (time / (GFLOPs / fp32 matmul peak)), ONNX fp32, lower is better",
           fill="black")

    def y(v: float) -> int:
        return int(base - (base - 50) * v / top)

    d.line([left, y(1.0), width - 10, y(1.0)], fill=(150, 150, 150))
    d.line([left, y(BAR), width - 10, y(BAR)], fill=(200, 0, 0))
    d.text((left + 2, y(BAR) - 12), f"{BAR} bar", fill=(200, 0, 0))
    d.text((left + 2, y(1.0) - 12), "1.0 = peak", fill=(120, 120, 120))
    for i, (r, vs) in enumerate(zip(rows, values, strict=True)):
        x0 = left + 20 + i * 190
        for j, ((_, color), v) in enumerate(zip(series, vs, strict=True)):
            if v is None:
                continue
            x = x0 + j * 50
            d.rectangle([x, y(v), x + 40, base], fill=color)
            d.text((x + 4, y(v) - 12), f"{v:.2f}", fill="black")
        d.text((x0, base + 8), r["variant"], fill="black")
    for j, (name, color) in enumerate(series):
        d.rectangle([left + j * 120, base + 34, left + j * 120 + 12, base + 46], fill=color)
        d.text((left + j * 120 + 16, base + 34), name, fill="black")
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+",
                    default=["mobile_sam", "edge_sam", "efficientvit_sam_l0", "sam_vit_b"])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for v in args.variants:
        rows.append(measure(v, args.runs, args.threads))
        o, p = rows[-1]["onnx"], rows[-1]["plain_decoder"]
        print(json.dumps({v: {k: o[k] for k in ("encoder_floor_ratio", "decoder_floor_ratio",
                                                "decoder_batch_speedup")}
                          | {"plain_singles_over_batch": p["plain_singles_over_batch"]}}))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    result = {"threads": args.threads, "runs": args.runs, "date": time.strftime("%Y-%m-%d"),
              "machine": {"processor": platform.processor() or platform.machine(),
                          "python": platform.python_version()}, "variants": rows}
    (out / "floor.json").write_text(json.dumps(result, indent=2))
    table = markdown(rows, args.threads)
    (out / "floor.md").write_text(table + "\n")
    chart(rows, out / "floor.png")
    write_between_markers(README, "floor-table", table)
    print(table)


if __name__ == "__main__":
    main()
