"""TFLite (LiteRT) video graphs: litert-torch conversion of each of the four video graphs and
parity with torch on the sample feed (``exporters/targets/tflite/video.py``).

Default: EdgeTAM's memory encoder (the cheapest graph, ~15 s). The rest is ``slow`` and opt-in
(``EDGESAM_VIDEO_ALL=1``): every graph of sam2_1_hiera_tiny and edgetam (~10-60 s each on
2 CPU cores, the SAM 2.1 memory attention runs 26 s)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_sam_sdk.errors import EdgeSamError

pytest.importorskip("torch")
VARIANTS = ("sam2_1_hiera_tiny", "edgetam")
GRAPH_NAMES = ("video_encoder", "memory_attention", "video_decoder", "memory_encoder")
MAX_COND = 2
opt_in = pytest.mark.skipif(os.environ.get("EDGESAM_VIDEO_ALL") != "1",
                            reason="every TFLite video graph takes minutes to convert: set "
                                   "EDGESAM_VIDEO_ALL=1 (and run slow tests) to opt in")

_MODELS: dict[str, Any] = {}


def graphs_of(variant: str) -> dict[str, Any]:
    """``variant``'s four torch video graphs (synthetic seed 0), built once per session."""
    if variant not in _MODELS:
        from edge_sam_sdk.exporters.checkpoint import load_model
        from edge_sam_sdk.registry import get_variant

        spec = get_variant(variant)
        model = load_model(spec, "synthetic:0")
        build = getattr(spec.video, "build_graphs", None)
        if build is None:  # pragma: no cover - before VideoSpec.build_graphs
            from edge_sam_sdk.exporters.models.sam2_video import video_graphs

            _MODELS[variant] = video_graphs(model)
        else:
            _MODELS[variant] = build(model)
    return _MODELS[variant]


def spec_and_feed(variant: str, name: str) -> tuple[Any, dict[str, np.ndarray]]:
    """The graph's spec at the bundle's slot counts and its sample feed (EdgeTAM: 512x64 slots)."""
    from edge_sam_sdk.graphs import TensorSpec, video_graph_specs
    from edge_sam_sdk.registry import get_variant
    from edge_sam_sdk.testing import synthetic_array
    from edge_sam_sdk.video.export import video_feed

    s, p = MAX_COND + 6, MAX_COND + 15
    spec = video_graph_specs(get_variant(variant), s, p)[name]
    if variant == "edgetam":  # 512 perceiver tokens of 64 per slot (whatever graphs.py says)
        slot = {"memory_features": (s, 512, 64), "maskmem_features": (1, 512, 64)}

        def fix(ts: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
            return tuple(dataclasses.replace(t, shape=slot[t.name]) if t.name in slot else t for t in ts)

        spec = dataclasses.replace(spec, inputs=fix(spec.inputs), outputs=fix(spec.outputs))
    feed = video_feed(name, spec)
    if name == "memory_attention":
        shape = next(t.shape for t in spec.inputs if t.name == "memory_features")
        feed["memory_features"] = synthetic_array(0xF5, shape, 0, -1.0, 1.0)
    return spec, feed


def convert_and_check(variant: str, name: str, tmp: Path) -> dict[str, Any]:
    from edge_sam_sdk.exporters.targets.tflite import video
    from edge_sam_sdk.graphs import parity_ok
    from edge_sam_sdk.runtimes.tflite_backend import TfliteBackend

    spec, feed = spec_and_feed(variant, name)
    module = graphs_of(variant)[name]
    path = tmp / f"{name}{video.SUFFIX}"
    points = [2, 3] if name == "video_decoder" else None  # the default 0..16 takes 4-5 minutes
    facts = video.export_video_graph(module, spec, feed, path, points=points)
    signatures = ["points_2", "points_3"] if name == "video_decoder" else [name]
    assert facts["extra"]["tflite"]["signatures"] == signatures
    backend = TfliteBackend(path)
    assert sorted(s.key for s in backend.signatures) == sorted(signatures)
    assert sorted(backend.inputs) == sorted(spec.input_names)
    assert sorted(backend.outputs) == sorted(spec.output_names)
    figures = video.parity_figures(module, spec, feed, path)
    if name == "video_decoder":  # each point count is its own signature
        two = video.signature_feeds(spec, feed, [2])["points_2"]  # a click and its padding point
        figures |= {f"{k} (2 points)": v for k, v in video.parity_figures(module, spec, two, path).items()}
    bad = {n: f for n, f in figures.items() if not parity_ok(f, spec)}
    assert not bad, f"{variant} {name}: tflite differs from torch: {bad}"
    return figures


def test_check_refuses_unsupported_precision() -> None:
    from edge_sam_sdk.exporters.targets.tflite import video

    assert video.RUNTIME == "tflite" and video.SUFFIX == ".tflite" and "fp32" in video.PRECISIONS
    with pytest.raises(EdgeSamError, match="not supported for tflite video"):
        video.check("int4")


def test_edgetam_memory_encoder_converts_with_parity(tmp_path: Path) -> None:
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    convert_and_check("edgetam", "memory_encoder", tmp_path)


@pytest.mark.slow
@opt_in
@pytest.mark.parametrize("name", GRAPH_NAMES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_video_graph_converts_with_parity(variant: str, name: str, tmp_path: Path) -> None:
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    convert_and_check(variant, name, tmp_path)
