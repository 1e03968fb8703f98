"""fp32 vs fp16 vs int8 ONNX bundles, measured in one run (issue 9).

    python benchmarks/precision.py --runs 3 --threads 2                 # the three variants
    python benchmarks/precision.py --s8s8 mobile_sam --bimodal-demo     # what benchmarks/README shows

Per variant, in its own subprocess (memory), with synthetic weights: exports fp32, fp16,
int8 with the bimodal fix and int8 without it (same quantized nodes, so only the fix differs;
``--s8s8 VARIANT...`` adds the TensorRT-style symmetric scheme), then compares each reduced bundle with
the fp32 one through :func:`edge_sam_sdk.exporters.quality.quality_report`: e2e mask IoU and
embedding relative error on the golden photo (``../shared/images/truck.jpg``, when present)
and the built-in demo image (neither is calibrated on), and encoder / decoder latency timed
alternately with fp32 in the same process. ``--bimodal-demo`` repeats the int8 pair on a
MobileSAM whose key projections were given bimodal offsets (every key channel +-5, as
PTQ4SAM observed in trained SAM), where the fix has something to fix.

Writes ``results/precision.json``, ``results/precision.md`` (the README table) and
``results/precision.png``.
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

HERE = Path(__file__).resolve().parent
TRUCK = HERE.parent.parent / "shared" / "images" / "truck.jpg"
VARIANTS = ("mobile_sam", "sam_vit_b", "efficientvit_sam_l0")


def quantized_nodes(path: Path) -> tuple[str, ...]:
    """Names of the nodes of a QDQ graph that take a dequantized input."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return tuple(n.name for n in model.graph.node
                 if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and set(n.input) & dq)


def bimodal_checkpoint(folder: Path) -> str:
    """synthetic:0 MobileSAM with +-5 offsets on every key channel (alternating), saved as .pt."""
    import torch

    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.exporters.targets.onnx.bimodal import find_sites
    from edge_sam_sdk.registry import get_variant

    model = load_model(get_variant("mobile_sam"), "synthetic:0")
    with torch.no_grad():
        for site in find_sites(model.image_encoder):
            rows = site.rows(1)
            signs = torch.where(torch.arange(rows.shape[1]) % 2 == 0, 1.0, -1.0)
            site.qkv.bias[rows.reshape(-1)] += (5.0 * signs).repeat(rows.shape[0])
    path = folder / "mobile_sam_bimodal_keys.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def measure(variant: str, runs: int, threads: int, s8s8: bool, demo: bool) -> dict[str, Any]:
    from edge_sam_sdk.bundle import load_bundle
    from edge_sam_sdk.exporters.export import export_bundle
    from edge_sam_sdk.exporters.quality import quality_report
    from edge_sam_sdk.exporters.targets.onnx.quantization import Int8Config
    from edge_sam_sdk.visualize import demo_image, load_image

    images = ([("truck.jpg", load_image(TRUCK))] if TRUCK.exists() else []) + [("demo_image", demo_image())]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = [("synthetic:0", variant)]
        if demo:
            ckpts.append((bimodal_checkpoint(Path(tmp)), f"{variant} (bimodal keys)"))
        for ckpt, label in ckpts:
            def export(name: str, ckpt: str = ckpt, label: str = label, **kw: Any) -> tuple[Path, float]:
                t0 = time.perf_counter()
                path = export_bundle(variant, ckpt, Path(tmp) / f"{label}_{name}".replace(" ", "_"),
                                     progress=lambda m: print(f"  {label} {name}: {m}", flush=True),
                                     quality_images=images if kw.get("precision") else (), **kw)
                return path, time.perf_counter() - t0

            fp32, fp32_s = export("fp32")
            configs: list[tuple[str, Path, float]] = []
            if ckpt == "synthetic:0":
                configs.append(("fp16", *export("fp16", precision="fp16")))
            on, on_s = export("int8", precision="int8")
            configs.append(("int8", on, on_s))
            nodes = quantized_nodes(on / "encoder.onnx")
            configs.append(("int8, no bimodal fix", *export(
                "int8_nofix", precision="int8", bimodal_fix=False, int8=Int8Config(nodes=nodes))))
            if s8s8 and ckpt == "synthetic:0":
                configs.append(("int8 s8s8", *export("int8_s8s8", precision="int8",
                                                     int8=Int8Config(scheme="s8s8"))))
            ref = load_bundle(fp32, threads=threads)
            for name, path, seconds in configs:
                cand = load_bundle(path, threads=threads)
                q = quality_report(ref, cand, images, latency_runs=runs)
                enc = cand.manifest["graphs"]["encoder"].get("reduced", {})
                sel = enc.get("selection", {})
                rows.append({
                    "variant": label, "precision": name, "export_s": seconds, "fp32_export_s": fp32_s,
                    "mask_iou_min": q["mask_iou_min"], "mask_iou_mean": q["mask_iou_mean"],
                    "embedding_rel_l2_max": q["embedding_rel_l2_max"],
                    "per_image": {r["name"]: {k: r[k] for k in ("mask_iou_min", "embedding_rel_l2")}
                                  for r in q["images"]},
                    "latency": q["latency"], "meets_bar": q["meets_bar"],
                    "quantized_compute_share": sel.get("compute_share"),
                    "quantized_nodes": enc.get("quantized_nodes"),
                    "bimodal_fix": cand.manifest.get("calibration", {}).get("bimodal_fix")})
    return {"variant": variant, "rows": rows}


def markdown(rows: list[dict[str, Any]], threads: int, runs: int) -> str:
    lines = ["| variant | precision | encoder (fp32 -> this) | speedup | decoder ratio | e2e mask IoU min "
             "| emb. rel. L2 | int8 share of compute | flipped q/k channels |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lat = r["latency"]
        share = r["quantized_compute_share"]
        share = "-" if share is None else f"{100 * share:.0f} %"
        fix = r["bimodal_fix"] or {}
        flipped = ("-" if not fix.get("enabled")
                   else f"{fix['flipped_channels']} in {fix['applied']}/{fix['sites']}")
        lines.append(f"| `{r['variant']}` | {r['precision']} | {lat['reference_encoder_ms']:.0f} -> "
                     f"{lat['encoder_ms']:.0f} ms | {lat['encoder_speedup']:.2f}x "
                     f"| {lat['decoder_latency_ratio']:.2f} | {r['mask_iou_min']:.4f} "
                     f"| {r['embedding_rel_l2_max']:.2e} | {share} | {flipped} |")
    lines += ["", f"onnxruntime CPU provider, {threads} threads, median of {runs} runs per graph timed "
              "alternately with fp32 in one process (`benchmarks/precision.py`); IoU and error over the "
              "e2e prompts on truck.jpg and the demo image, vs the fp32 bundle; synthetic weights."]
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Horizontal bars: encoder latency per variant and precision (fp32 reference first)."""
    from PIL import Image, ImageDraw

    bars: list[tuple[str, float, str]] = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        bars.append((f"{variant} fp32", mine[0]["latency"]["reference_encoder_ms"], "fp32"))
        bars += [(f"{variant} {r['precision']}", r["latency"]["encoder_ms"], r["precision"]) for r in mine]
    colors = {"fp32": (150, 150, 150), "fp16": (255, 140, 0)}
    width, bar_h, left = 900, 26, 330
    img = Image.new("RGB", (width, 50 + bar_h * len(bars) + 20), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), "ONNX encoder latency by precision (median ms, onnxruntime CPU)", fill="black")
    top = max(v for _, v, _ in bars)
    for i, (label, value, kind) in enumerate(bars):
        y = 40 + i * bar_h
        w = int((width - left - 90) * value / top)
        d.text((10, y + 6), label, fill="black")
        d.rectangle([left, y + 3, left + w, y + bar_h - 4], fill=colors.get(kind, (30, 144, 255)))
        d.text((left + w + 6, y + 6), f"{value:.0f} ms", fill="black")
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--s8s8", nargs="*", default=[], metavar="VARIANT",
                    help="also the symmetric (TensorRT-style) int8 scheme for these variants")
    ap.add_argument("--bimodal-demo", action="store_true", help="also MobileSAM with bimodal keys")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # worker mode: one variant, JSON on the last line
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.runs, args.threads, args.one in args.s8s8,
                                 args.bimodal_demo and args.one == "mobile_sam")))
        return
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(args.variants, 1):
        print(f"[{i}/{len(args.variants)}] {name}", flush=True)
        cmd = [sys.executable, __file__, "--one", name, "--runs", str(args.runs),
               "--threads", str(args.threads)]
        cmd += ["--s8s8", *args.s8s8] * bool(args.s8s8) + ["--bimodal-demo"] * args.bimodal_demo
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        rows += json.loads(proc.stdout.strip().splitlines()[-1])["rows"]
    table = markdown(rows, args.threads, args.runs)
    meta = {"machine": platform.machine(), "python": platform.python_version(), "threads": args.threads,
            "runs": args.runs, "date": time.strftime("%Y-%m-%d"), "truck_present": TRUCK.exists()}
    (out / "precision.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (out / "precision.md").write_text(table + "\n")
    chart(rows, out / "precision.png")
    print(table)


if __name__ == "__main__":
    main()
