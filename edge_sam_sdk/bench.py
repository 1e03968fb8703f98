"""Latency measurement of a bundle's graphs (used by ``edgesam bench`` and ``benchmarks/``)."""

from __future__ import annotations

import resource
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


def bench_bundle(bundle: Bundle, runs: int = 10, warmup: int = 2,
                 encoder_runs: int | None = None) -> dict[str, Any]:
    """Encoder latency and per-prompt decoder latency (one point, batch 1), in ms."""
    enc_feed, feed = latency_feeds(bundle)
    enc = time_call(lambda: bundle.encoder.run(enc_feed), encoder_runs or runs, warmup)
    dec = time_call(lambda: bundle.decoder.run(feed), runs, warmup)
    return {"variant": bundle.variant, "target": bundle.manifest.get("target"),
            "precision": bundle.manifest.get("precision"),
            "encoder_ms": summarize(enc), "decoder_ms": summarize(dec),
            "peak_rss_mb": peak_rss_mb()}
