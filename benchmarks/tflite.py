"""TFLite fp32/fp16/int8 next to onnxruntime, encoder and decoder latency, in one run.

    python benchmarks/tflite.py --variants mobile_sam edge_sam --runs 10 --threads 2

Per variant (synthetic weights): exports an ONNX bundle and a tflite fp32 bundle (decoder
point counts 1-4), quantizes the tflite graphs to fp16 and int8 (default calibration
images), then times every bundle *interleaved* (round r runs each bundle's encoder once and
its decoder ``--decoder-runs`` times), so load from other jobs on a shared machine hits all
engines alike. Decoder: one point, batch 1 (``edge_sam_sdk.bench``'s prompt). Writes
``results/tflite.json`` and ``results/tflite.png``; the fp16/int8 mask IoU against fp32 comes
from each bundle's manifest (``quality``).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from compare_torch_onnx import bar_chart

from edge_sam_sdk.bench import latency_feeds, summarize
from edge_sam_sdk.bundle import Bundle, load_bundle
from edge_sam_sdk.exporters.export import export_bundle

HERE = Path(__file__).resolve().parent
ENGINES = ("onnx", "tflite_fp32", "tflite_fp16", "tflite_int8")
QUALITY = ("mask_iou_min", "mask_iou_mean", "embedding_rel_l2_max", "judgeable")


def export_all(variant: str, root: Path) -> dict[str, Path]:
    out = {"onnx": export_bundle(variant, "synthetic:0", root / "onnx", progress=print)}
    out["tflite_fp32"] = export_bundle(variant, "synthetic:0", root / "fp32", target="tflite",
                                       tflite={"decoder_points": "1-4"}, progress=print)
    for p in ("fp16", "int8"):
        options = {"decoder_points": "1-4", "fp32_bundle": out["tflite_fp32"]}
        out[f"tflite_{p}"] = export_bundle(variant, "synthetic:0", root / p, target="tflite", precision=p,
                                           tflite=options, progress=print)
    return out


def interleaved(bundles: dict[str, Bundle], runs: int, decoder_runs: int) -> dict[str, Any]:
    prepared = {k: (b, *latency_feeds(b)) for k, b in bundles.items()}
    times: dict[str, dict[str, list[float]]] = {k: {"encoder": [], "decoder": []} for k in bundles}
    for _ in range(runs):
        for k, (b, enc, dec) in prepared.items():
            t0 = time.perf_counter()
            b.encoder.run(enc)
            times[k]["encoder"].append((time.perf_counter() - t0) * 1e3)
            for _ in range(decoder_runs):
                t0 = time.perf_counter()
                b.decoder.run(dec)
                times[k]["decoder"].append((time.perf_counter() - t0) * 1e3)
    return {k: {g: summarize(v) for g, v in t.items()} for k, t in times.items()}


def markdown(result: dict[str, Any]) -> str:
    """The benchmarks/README table: median (p10-p90) per engine, ratio to tflite fp32, quality."""
    lines = ["| variant | engine | encoder median (p10-p90) | vs tflite fp32 | decoder median (p10-p90) "
             "| vs tflite fp32 | encoder / decoder size | e2e mask IoU vs fp32 (min) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for variant, entry in result["variants"].items():
        base = entry["tflite_fp32"]
        for k in ENGINES:
            e, d, q = entry[k]["encoder"], entry[k]["decoder"], entry[k]["quality"]
            iou = "-" if "mask_iou_min" not in q else f"{q['mask_iou_min']:.4f}"
            if q.get("judgeable") is False:
                iou += " (not judgeable: synthetic RepViT activations)"
            mb = "/".join(f"{entry[k]['bytes'][g] / 2**20:.1f}" for g in ("encoder", "decoder"))
            lines.append(f"| `{variant}` | {k} | {e['median']:.0f} ms ({e['p10']:.0f}-{e['p90']:.0f}) "
                         f"| {e['median'] / base['encoder']['median']:.2f} | {d['median']:.1f} ms "
                         f"({d['p10']:.1f}-{d['p90']:.1f}) | {d['median'] / base['decoder']['median']:.2f} "
                         f"| {mb} MB | {iou} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", default=["mobile_sam", "edge_sam"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--decoder-runs", type=int, default=5, help="decoder runs per round and engine")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    result: dict[str, Any] = {
        "threads": args.threads, "runs": args.runs, "decoder_runs_per_round": args.decoder_runs,
        "machine": {"processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"), "variants": {}}
    rows = []
    for variant in args.variants:
        with tempfile.TemporaryDirectory() as tmp:
            paths = export_all(variant, Path(tmp))
            bundles = {k: load_bundle(p, threads=args.threads) for k, p in paths.items()}
            for b in bundles.values():  # warm-up
                enc, dec = latency_feeds(b)
                b.encoder.run(enc)
                b.decoder.run(dec)
            timing = interleaved(bundles, args.runs, args.decoder_runs)
            entry: dict[str, Any] = {}
            for k in ENGINES:
                m = bundles[k].manifest
                q = m.get("quality", {})
                entry[k] = {**timing[k], "bytes": {g: (paths[k] / m["graphs"][g]["file"]).stat().st_size
                                                   for g in ("encoder", "decoder")},
                            "quality": {f: q[f] for f in QUALITY if f in q}}
                rows.append((f"{variant} {k} encoder", entry[k]["encoder"]["median"]))
            result["variants"][variant] = entry
            print(json.dumps({variant: {k: {g: round(v[g]["median"], 1) for g in ("encoder", "decoder")}
                                        for k, v in entry.items()}}))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "tflite.json").write_text(json.dumps(result, indent=2))
    (HERE / "results" / "tflite.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    bar_chart(rows, f"encoder median latency, {args.threads} threads (blue: onnxruntime)",
              HERE / "results" / "tflite.png")


if __name__ == "__main__":
    main()
