"""Size, compute and ONNX latency of every registered variant, for the table of docs/variants.md.

    python benchmarks/variants_table.py --runs 5 --threads 2 [--variants mobile_sam nanosam]

Per variant, in a fresh subprocess (so one model's memory never stacks on another's): build
it with synthetic weights, count parameters, count the encoder's FLOPs with
``torch.utils.flop_counter`` (one multiply-add = 2 FLOPs, batch 1), export the ONNX bundle and
time its encoder and per-prompt decoder with onnxruntime. Writes ``results/variants.json``,
``results/variants.md`` and ``results/variants.png``, and rewrites the table between the
``variants-table`` markers in ``docs/variants.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from readme_table import write_between_markers

HERE = Path(__file__).resolve().parent
README = HERE.parent / "docs" / "variants.md"


def measure(variant: str, runs: int, threads: int) -> dict[str, Any]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edge_sam_sdk.bench import bench_bundle
    from edge_sam_sdk.bundle import load_bundle
    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.exporters.export import export_bundle, graph_modules
    from edge_sam_sdk.registry import get_variant

    spec = get_variant(variant)
    model = load_model(spec, "synthetic:0")
    params = sum(p.numel() for p in model.parameters())
    encoder = graph_modules(model)["encoder"]  # SAM 2: with its high-res projections
    enc_params = sum(p.numel() for p in encoder.parameters())
    s = spec.processing.input_size
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        encoder(torch.zeros(1, 3, s, s))
    flops = counter.get_total_flops()
    del model, encoder
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = export_bundle(variant, "synthetic:0", Path(tmp) / variant)
        export_s = time.perf_counter() - t0
        bench = bench_bundle(load_bundle(path, threads=threads), runs=runs, warmup=1)
    return {"variant": variant, "input_size": s, "params_m": params / 1e6,
            "encoder_params_m": enc_params / 1e6, "encoder_gflops": flops / 1e9,
            "onnx_encoder_ms": bench["encoder_ms"]["median"],
            "onnx_decoder_ms": bench["decoder_ms"]["median"],
            "export_s": export_s, "peak_rss_mb": bench["peak_rss_mb"]}


def markdown(rows: list[dict[str, Any]], threads: int) -> str:
    lines = ["| variant | input | params (encoder) | encoder GFLOPs | ONNX encoder | ONNX decoder / prompt |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r['variant']}` | {r['input_size']} "
                     f"| {r['params_m']:.1f} M ({r['encoder_params_m']:.1f} M) | {r['encoder_gflops']:.1f} "
                     f"| {r['onnx_encoder_ms']:.0f} ms | {r['onnx_decoder_ms']:.1f} ms |")
    lines.append("")
    lines.append(f"Median latency of onnxruntime (CPU provider) with {threads} threads on this project's "
                 "2-core x86-64 VM; GFLOPs count one multiply-add as 2 FLOPs. "
                 "Measured by `benchmarks/variants_table.py`.")
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Encoder latency against encoder GFLOPs on log-log axes, one labelled dot per variant."""
    import math

    from PIL import Image, ImageDraw

    w, h, m = 960, 620, 70
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    xs = [math.log10(r["encoder_gflops"]) for r in rows]
    ys = [math.log10(r["onnx_encoder_ms"]) for r in rows]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))

    def px(lx: float, ly: float) -> tuple[float, float]:
        return (m + (w - 2 * m) * (lx - x0) / (x1 - x0), h - m - (h - 2 * m) * (ly - y0) / (y1 - y0))

    d.rectangle([m, m, w - m, h - m], outline="black")
    for e in range(x0, x1 + 1):
        x, _ = px(e, y0)
        d.line([x, m, x, h - m], fill=(225, 225, 225))
        d.text((x - 12, h - m + 6), f"{10 ** e:g}", fill="black")
    for e in range(y0, y1 + 1):
        _, y = px(x0, e)
        d.line([m, y, w - m, y], fill=(225, 225, 225))
        d.text((10, y - 6), f"{10 ** e:g} ms", fill="black")
    d.text((w // 2 - 110, h - 30), "encoder GFLOPs (2 per multiply-add, log)", fill="black")
    d.text((m, 20), "ONNX encoder latency, median, onnxruntime CPU (log)", fill="black")
    for r, lx, ly in sorted(zip(rows, xs, ys, strict=True), key=lambda t: t[1]):
        x, y = px(lx, ly)
        d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(30, 144, 255))
        d.text((x + 7, y - 5), r["variant"], fill="black")
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="*", help="default: every registered variant")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--replot", action="store_true", help="redraw table and plot from results/variants.json")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # worker mode: measure one variant, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.runs, args.threads)))
        return
    from edge_sam_sdk.registry import list_variants

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    cache = out / "variants.json"
    previous = {r["variant"]: r for r in json.loads(cache.read_text())["rows"]} if cache.exists() else {}
    names = [] if args.replot else (args.variants or list_variants())
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--runs", str(args.runs),
                               "--threads", str(args.threads)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{name}: measurement failed")
        previous[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"    {previous[name]}", flush=True)
    rows = [previous[n] for n in list_variants() if n in previous]
    cache.write_text(json.dumps({"threads": args.threads, "runs": args.runs,
                                 "machine": platform.processor() or platform.machine(),
                                 "rows": rows}, indent=2))
    table = markdown(rows, args.threads)
    (out / "variants.md").write_text(table + "\n")
    chart(rows, out / "variants.png")
    write_between_markers(README, "variants-table", table)
    print(table)


if __name__ == "__main__":
    main()
