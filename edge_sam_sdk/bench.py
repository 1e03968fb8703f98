"""Latency measurement of a bundle's graphs (used by ``edgesam bench`` and ``benchmarks/``)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .bundle import Bundle
from .processing import decoder_prompts


def summarize(times_ms: list[float]) -> dict[str, float]:
    a = np.asarray(times_ms, dtype=np.float64)
    return {"median": float(np.median(a)), "p10": float(np.percentile(a, 10)),
            "p90": float(np.percentile(a, 90)), "runs": int(a.size)}


def time_call(fn: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def latency_feeds(bundle: Bundle) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The timing feeds: a fixed random ``1x3xSxS`` encoder input, and a one-point, batch-1
    decoder prompt on its features (no mask input)."""
    s = bundle.processing.input_size
    image = np.random.default_rng(0).uniform(-2.0, 2.5, (1, 3, s, s)).astype(np.float32)
    feats = bundle.encoder.run({"image": image})
    coords, labels = decoder_prompts(np.array([[[400.0, 300.0]]]), np.array([[1.0]]), None,
                                     spec=bundle.processing)
    inputs = [t["name"] for t in bundle.graph("decoder")["inputs"]]
    feed = {k: v for k, v in feats.items() if k in inputs}
    feed.update(point_coords=coords, point_labels=labels)
    if "mask_input" in inputs:
        low = bundle.processing.low_res_size
        feed.update(mask_input=np.zeros((1, 1, low, low), np.float32),
                    has_mask_input=np.zeros((1,), np.float32))
    return {"image": image}, feed


def _numpy_peak(threads: int, n: int, repeats: int) -> float | None:
    """numpy (OpenBLAS) ``n x n`` fp32 matmul GFLOP/s at ``threads`` threads, in a fresh
    interpreter (BLAS reads its thread count when it loads)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", _NUMPY_PROBE, str(n), str(repeats)], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    try:
        return float(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


_NUMPY_PROBE = """
import sys, time
import numpy as np
n, r = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
c = np.empty_like(a)
np.matmul(a, b, out=c)
best = float("inf")
for _ in range(r):
    t0 = time.perf_counter(); np.matmul(a, b, out=c); best = min(best, time.perf_counter() - t0)
print(2 * n ** 3 / best / 1e9)
"""


def _onnxruntime_peak(threads: int, n: int, repeats: int) -> float | None:
    """onnxruntime (MLAS) ``n x n`` fp32 MatMul GFLOP/s; ``None`` without onnx/onnxruntime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    info = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ABC"]
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "peak", info[:2], info[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {x: rng.standard_normal((n, n), dtype=np.float32) for x in "AB"}
    sess.run(None, feed)
    best = min(time_call(lambda: sess.run(None, feed), repeats, 0))
    return 2 * n ** 3 / (best / 1e3) / 1e9


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> dict[str, Any]:
    """This machine's fp32 matmul peak (GFLOP/s) at ``threads`` threads: the best of numpy's
    BLAS and onnxruntime's MLAS (the higher, so floor ratios are never flattered)."""
    probes = {"numpy": _numpy_peak(threads, n, repeats),
              "onnxruntime": _onnxruntime_peak(threads, n, repeats)}
    found = {k: v for k, v in probes.items() if v}
    return {"gflops": max(found.values()) if found else None, "threads": threads, "n": n, **probes}


def graph_gflops(bundle: Bundle, graph: str) -> float | None:
    """The GFLOPs counted at export for ``graph`` (``manifest.graphs.<graph>.gflops``), or None."""
    entry = bundle.manifest.get("graphs", {}).get(graph, {}).get("gflops")
    return float(entry["value"]) if entry else None


def floor_ratio(ms: float, gflops: float | None, peak: float | None) -> float | None:
    """``time / (gflops / peak)``: 1.0 runs every counted FLOP at matmul peak."""
    if not gflops or not peak:
        return None
    return (ms / 1e3) / (gflops / peak)


def bench_bundle(bundle: Bundle, runs: int = 10, warmup: int = 2, encoder_runs: int | None = None,
                 threads: int | None = None, image: np.ndarray | None = None, batch: int = 16,
                 peak: bool = True) -> dict[str, Any]:
    """Latency of ``bundle`` (ms; median, p10, p90) and its floor ratios.

    - ``encoder_ms``: the encoder graph on a ``1x3xSxS`` input.
    - ``decoder_ms``: one prompt (one click, multimask) through :class:`SamPredictor`: the
      decoder graph plus host token selection, upscaling to ``image``'s size (default: the
      ``600x900`` demo image) and thresholding. ``decoder_graph_ms``: the graph alone.
    - ``decoder_batch_ms``: ``batch`` clicks in one ``predict_batch`` call;
      ``decoder_batch_speedup`` = ``batch`` single calls / one batched call.
    - ``*_gflops`` from the manifest (counted at export), ``peak_gflops`` measured here before
      and after the timings (the higher), ``*_floor_ratio`` = median time / (GFLOPs / peak).
    """
    from .predictor import SamPredictor
    from .visualize import demo_image

    t = threads or os.cpu_count() or 1
    peaks = [matmul_peak(t)] if peak else []
    enc_feed, feed = latency_feeds(bundle)
    enc = time_call(lambda: bundle.encoder.run(enc_feed), encoder_runs or runs, warmup)
    graph = time_call(lambda: bundle.decoder.run(feed), runs, warmup)
    img = demo_image() if image is None else image
    predictor = SamPredictor(bundle)
    predictor.set_image(img)
    h, w = img.shape[:2]
    click = np.array([[w * 0.5, h * 0.5]])
    one = time_call(lambda: predictor.predict(click, np.array([1.0])), runs, warmup)
    clicks = np.random.default_rng(0).uniform((0, 0), (w, h), (batch, 1, 2))
    many = time_call(lambda: predictor.predict_batch(clicks, np.ones((batch, 1))), max(3, runs // 4), 1)
    if peak:
        peaks.append(matmul_peak(t))
    best = max(peaks, key=lambda p: p["gflops"] or 0.0) if peaks else {"gflops": None}
    res: dict[str, Any] = {
        "variant": bundle.variant, "target": bundle.manifest.get("target"),
        "precision": bundle.manifest.get("precision"), "threads": threads, "image_size": [h, w],
        "encoder_ms": summarize(enc), "decoder_ms": summarize(one), "decoder_graph_ms": summarize(graph),
        "decoder_batch_ms": summarize(many) | {"batch": batch},
        "decoder_batch_speedup": batch * float(np.median(one)) / float(np.median(many)),
        "encoder_gflops": graph_gflops(bundle, "encoder"), "decoder_gflops": graph_gflops(bundle, "decoder"),
        "peak_gflops": best["gflops"], "peak_detail": peaks, "peak_rss_mb": peak_rss_mb()}
    for g in ("encoder", "decoder"):
        res[f"{g}_floor_ratio"] = floor_ratio(res[f"{g}_ms"]["median"], res[f"{g}_gflops"],
                                              res["peak_gflops"])
    return res


def format_bench(r: dict[str, Any]) -> str:
    """The human-readable lines ``edgesam bench`` prints."""
    def ratio(x: float | None) -> str:
        return f"{x:.2f}x floor" if x is not None else "floor unknown (no GFLOPs in the manifest)"

    def gf(x: float | None) -> str:
        return f"{x:.2f} GFLOPs" if x is not None else "? GFLOPs"

    e, d, b = r["encoder_ms"], r["decoder_ms"], r["decoder_batch_ms"]
    peak = r["peak_gflops"]
    return "\n".join([
        f"encoder: median {e['median']:.1f} ms  p10 {e['p10']:.1f}  p90 {e['p90']:.1f}  "
        f"{gf(r['encoder_gflops'])}  {ratio(r['encoder_floor_ratio'])}",
        f"decoder: median {d['median']:.2f} ms  p10 {d['p10']:.2f}  p90 {d['p90']:.2f} per prompt "
        f"(graph {r['decoder_graph_ms']['median']:.2f} ms + host post-processing to "
        f"{r['image_size'][0]}x{r['image_size'][1]})  {gf(r['decoder_gflops'])}  "
        f"{ratio(r['decoder_floor_ratio'])}",
        f"batch of {b['batch']}: median {b['median']:.1f} ms = {b['median'] / b['batch']:.2f} ms per prompt, "
        f"{r['decoder_batch_speedup']:.2f}x cheaper than {b['batch']} single calls",
        f"fp32 matmul peak: {peak:.0f} GFLOP/s" if peak else "fp32 matmul peak: not measured",
        f"peak memory: {r['peak_rss_mb']:.0f} MiB"])
