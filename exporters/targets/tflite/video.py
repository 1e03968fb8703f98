"""TFLite / LiteRT conversion of the four video graphs (``docs/video.md``), one graph at a time.

Each video graph has static shapes (batch 1, ``S`` spatial and ``P`` pointer slots fixed at
export), so each ``.tflite`` holds one signature named after the graph, its inputs and outputs
named as in the :class:`~edge_sam_sdk.graphs.GraphSpec`; the video decoder, whose prompt
point count varies per call, holds one ``points_<N>`` signature per count (as the image
decoder, ``N`` 0..16 by default, weights shared; the backend picks one by the feed). The
bundle-level loop (``edge_sam_sdk.video.export``) checks parity with the torch module through
the ``tflite`` backend; :func:`parity_figures` is the same check for tests.

litert-torch 0.10 lowers the torch graphs as they are, so no video-specific rewrite is applied
(:func:`~.export.tflite_friendly` still runs): the int64 ``maskmem_tpos_enc`` gather and the
``-inf`` additive slot mask of ``slot_key_mask`` convert, and empty slots still drop out
exactly (measured against torch with empty slots in the feed). The converter stores
``memory_tpos`` as int32 (``enable_x64`` off); the ``tflite`` backend casts the int64 feed.

fp16 is not offered: weight-only fp16 (:func:`~.quantization.fp16_weights`) of the EdgeTAM
memory attention measured rel. L2 3.2e-4 against torch (bound 1e-4), and ai-edge-quantizer
0.10 fails on the EdgeTAM memory encoder (``TypeError: can only concatenate str (not
"bytes") to str``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.graphs import GraphSpec, parity, sample_feed

from .export import (
    NamedGraph,
    TfliteConversionError,
    _quiet_converter,
    conversion_message,
    parse_points,
    require_litert_torch,
    tflite_friendly,
)

SUFFIX = ".tflite"
RUNTIME = "tflite"
#: Precisions every video graph of sam2_1_hiera_tiny and edgetam converts at within parity.
PRECISIONS = ("fp32",)


def check(precision: str) -> None:
    """Refuse an unsupported precision or missing packages before any work (one line)."""
    if precision not in PRECISIONS:
        raise EdgeSamError(f"precision {precision!r} is not supported for tflite video bundles; "
                           f"choose one of {list(PRECISIONS)}")
    require_litert_torch(precision)


def converter_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"litert-torch {version('litert-torch')}"
    except PackageNotFoundError:  # pragma: no cover - require_litert_torch ran first
        return "litert-torch"


def signature_feeds(spec: GraphSpec, feed: dict[str, np.ndarray],
                    points: list[int] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Signature name -> its feed: ``spec.name`` with ``feed``; a graph with prompt points (the
    video decoder) one ``points_<N>`` per count ``N`` (default 0..16, as the image decoder:
    padding a prompt with ``-1`` points changes SAM's output), ``feed``'s other inputs."""
    if "point_coords" not in spec.input_names:
        return {spec.name: feed}
    out = {}
    for n in parse_points(points):
        prompt = sample_feed(spec, batch=1, points=n)
        out[f"points_{n}"] = feed | {k: prompt[k] for k in ("point_coords", "point_labels")}
    return out


def export_video_graph(module: nn.Module, spec: GraphSpec, feed: dict[str, np.ndarray],
                       path: Path, precision: str = "fp32",
                       points: list[int] | None = None) -> dict[str, Any]:
    """Convert one video graph to ``path`` (tensors named as in ``spec``, static shapes of
    ``feed``; the signatures of :func:`signature_feeds`); the manifest facts (JSON-serializable)."""
    import litert_torch

    check(precision)
    path = Path(path)
    friendly = tflite_friendly(module.eval())
    rewrites = ["CroppedConvTranspose"] if friendly is not module else []
    named = NamedGraph(friendly, spec).eval()
    feeds = signature_feeds(spec, feed, points)
    sig = "?"
    t0 = time.perf_counter()
    try:
        with _quiet_converter(), torch.no_grad():
            converter = litert_torch.Converter()
            for sig, f in feeds.items():
                converter.signature(sig, named, sample_kwargs={
                    n: torch.from_numpy(np.ascontiguousarray(f[n])) for n in spec.input_names})
            sig = ", ".join(feeds)
            model = converter.convert()
            model.export(str(path))
    except Exception as exc:  # the converter raises anything from AssertionError to RuntimeError
        raise TfliteConversionError(conversion_message("video", spec.name, sig, exc)) from exc
    facts: dict[str, Any] = {
        "signatures": list(feeds), "converter": converter_version(),
        "strategy": "one static signature (batch 1, slot counts fixed at export)",
        "rewrites": rewrites, "convert_seconds": round(time.perf_counter() - t0, 1)}
    if len(feeds) > 1:
        facts["points"] = [int(k.split("_")[1]) for k in feeds]
        facts["strategy"] = ("one static signature per prompt point count N (batch 1 each); the "
                             "backend picks it by point_coords' N and runs a batch row by row")
    narrowed = [t.name for t in spec.inputs if t.dtype == "int64"]
    if narrowed:  # litert-torch's enable_x64=False; the tflite backend casts the feed
        facts["int32_inputs"] = narrowed
    return {"extra": {**spec.extra, "tflite": facts}}


def parity_figures(module: nn.Module, spec: GraphSpec, feed: dict[str, np.ndarray],
                   path: Path) -> dict[str, dict[str, float]]:
    """Output name -> :func:`~edge_sam_sdk.graphs.parity` of the ``.tflite`` against torch."""
    from edge_sam_sdk.runtimes.tflite_backend import TfliteBackend

    with torch.inference_mode():
        ref = module(*(torch.from_numpy(feed[n]) for n in spec.input_names))
    ref = ref if isinstance(ref, tuple) else (ref,)
    got = TfliteBackend(path).run(feed)
    return {n: parity(r.numpy(), got[n]) for n, r in zip(spec.output_names, ref, strict=True)}
