"""Does int8 pay for the decoder? Quantize a MobileSAM decoder graph and compare (issue 9).

    python benchmarks/decoder_int8.py --runs 20 --threads 2

Exports MobileSAM fp32 (synthetic weights), calibrates the decoder's Conv/Gemm/MatMul
inputs on the fp32 encoder outputs of 4 generated scenes with a click and a box prompt each,
quantizes every such node (u8s8 QDQ, per-channel weights), and runs the quality report of
"fp32 encoder + int8 decoder" against the fp32 bundle on truck.jpg (when present) and the
demo image: decoder latency ratio and e2e mask IoU. Writes ``results/decoder_int8.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRUCK = HERE.parent.parent / "shared" / "images" / "truck.jpg"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import onnx

    from edge_sam_sdk.bundle import Bundle, load_bundle
    from edge_sam_sdk.exporters.calibration import default_scenes
    from edge_sam_sdk.exporters.export import export_bundle
    from edge_sam_sdk.exporters.quality import format_report, quality_report
    from edge_sam_sdk.exporters.targets.onnx.quantization import INT8_OPS, Int8Config, quantize, tensor_ranges
    from edge_sam_sdk.exporters.targets.onnx.reduced_precision import _decoder_feeds
    from edge_sam_sdk.processing import preprocess
    from edge_sam_sdk.runtimes.onnxruntime_backend import OnnxRuntimeBackend
    from edge_sam_sdk.visualize import demo_image, load_image

    images = ([("truck.jpg", load_image(TRUCK))] if TRUCK.exists() else []) + [("demo_image", demo_image())]
    with tempfile.TemporaryDirectory() as tmp:
        src = export_bundle("mobile_sam", "synthetic:0", Path(tmp) / "fp32")
        ref = load_bundle(src, threads=args.threads)
        feeds = [{"image": preprocess(im, ref.processing)[0]} for _, im in default_scenes(4)]
        cache, out = Path(tmp) / "ranges.json", Path(tmp) / "decoder_int8.onnx"
        tensor_ranges(src / "decoder.onnx", _decoder_feeds(ref, feeds, limit=4), INT8_OPS, cache)
        nodes = [n.name for n in onnx.load(str(src / "decoder.onnx")).graph.node if n.op_type in INT8_OPS]
        quantize(src / "decoder.onnx", out, cache, Int8Config(), nodes)
        cand = Bundle(dict(ref.manifest, precision="int8"), ref.encoder,
                      OnnxRuntimeBackend(out, threads=args.threads))
        report = quality_report(ref, cand, images, latency_runs=args.runs)
    print(format_report(report))
    result = {"quantized_nodes": len(nodes), "mask_iou_min": report["mask_iou_min"],
              "per_image": {r["name"]: r["mask_iou_min"] for r in report["images"]},
              "decoder_ms": report["latency"]["decoder_ms"],
              "reference_decoder_ms": report["latency"]["reference_decoder_ms"],
              "decoder_speedup": report["latency"]["decoder_speedup"], "threads": args.threads}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "decoder_int8.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
