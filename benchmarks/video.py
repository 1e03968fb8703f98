"""Video tracking cost per frame: latency split by graph, against image mode, and memory-bank bytes.

    python benchmarks/video.py --source torch:sam2_1_hiera_tiny --source bundles/tiny_onnx \\
        --source torch:edgetam --source bundles/edgetam_onnx --json video.json --md video.md --png video.png

Each ``--source`` is a video bundle folder (its target's runtime) or ``torch:VARIANT`` (the
torch reference, synthetic weights). All sources run in one process, one after the other, on
the same clip. One object is prompted with a click at the frame centre on frame 0 and
propagated forward; each graph's ``run`` is timed (wall clock) and reported per tracked frame
(frame 0, the prompt, is excluded) as the median over frames: ``video_encoder``,
``memory_attention``, ``video_decoder``, ``memory_encoder`` and ``host`` (everything else:
frame loading and resizing, slot selection, bfloat16 rounding, mask upsampling). *Image mode*
is the same graphs without memory on the same frames (encoder, then the decoder on the
encoder's embeddings with the click), as an image predictor runs them. Bank bytes: what one
object holds after the clip (``VideoState.memory_bytes``) and the streaming ``Tracker``'s bound
(every static slot filled). With synthetic weights the masks are meaningless; the cost is the
same as with real ones.

Compute floor: each graph's matrix-product GFLOPs on the feeds it got on the last tracked frame
(our torch graphs under ``torch.utils.flop_counter``, 2 FLOPs per multiply-add:
``exporters/flops.py`` ``feeds_gflops``; static bundles pay for every slot, empty ones included), over this
machine's fp32 matmul peak measured in the same run (``edge_sam_sdk.bench.matmul_peak``).
Floor ratio = measured time / (GFLOPs / peak).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.video import VideoPredictor
from edge_sam_sdk.video.engine import GRAPHS, VideoEngine
from edge_sam_sdk.video.frames import model_input

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "video" / "truck_pan"
STAGES = (*GRAPHS, "host")
COLORS = {"video_encoder": (30, 144, 255), "memory_attention": (220, 60, 60), "video_decoder": (255, 140, 0),
          "memory_encoder": (60, 170, 90), "host": (150, 150, 150)}


class Timed:
    """A graph backend whose ``run`` adds its wall time to ``log[name]`` and its feed to
    ``feeds`` (the caller clears both per frame)."""

    def __init__(self, inner: Any, name: str, log: dict[str, list[float]]):
        self.inner, self.name, self.log = inner, name, log
        self.inputs, self.outputs = inner.inputs, inner.outputs
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.feeds.append(dict(feed))
        t = time.perf_counter()
        out = self.inner.run(feed)
        self.log[self.name].append((time.perf_counter() - t) * 1e3)
        return dict(out)


def frame_gflops(variant: str, feeds: dict[str, list[dict[str, np.ndarray]]],
                 engines: dict[str, VideoEngine]) -> dict[str, float]:
    """Matrix-product GFLOPs per graph of one tracked frame: our torch graphs of ``variant``
    (built once into ``engines``) run on ``feeds``, the calls each graph got on that frame."""
    from edge_sam_sdk.exporters.flops import feeds_gflops
    from edge_sam_sdk.video.reference import torch_engine

    if variant not in engines:
        engines[variant] = torch_engine(variant, "synthetic:0")
    out = {}
    for g, calls in feeds.items():
        backend = engines[variant].graphs[g]
        backend.module.requires_grad_(False)  # parameters passed to submodules: no grad hooks
        out[g] = round(feeds_gflops(backend.module, backend.inputs, calls), 3)
    return out


def load(source: str, threads: int | None) -> tuple[VideoEngine, dict[str, str]]:
    """The engine of ``source`` and what it is (variant, target, precision)."""
    if source.startswith("torch:"):
        from edge_sam_sdk.video.reference import torch_engine

        return torch_engine(source[6:], "synthetic:0", threads=threads), {
            "variant": source[6:], "target": "torch", "precision": "fp32"}
    from edge_sam_sdk.video.bundle import load_video_engine, read_video_manifest

    m = read_video_manifest(source)
    return load_video_engine(source, threads=threads), {
        "variant": m["variant"], "target": m["target"], "precision": m["precision"]}


def image_mode_ms(engine: VideoEngine, frames: list[np.ndarray], point: np.ndarray) -> float:
    """Median ms per frame of the encoder then the decoder with one click, no memory."""
    times = []
    for frame in frames:
        t = time.perf_counter()
        feats = engine.encode_frame(model_input(frame, engine.config.image_size))
        engine.run("video_decoder", {
            "image_embeddings": feats.arrays["image_embeddings"],
            "high_res_feats_0": feats.arrays["high_res_feats_0"],
            "high_res_feats_1": feats.arrays["high_res_feats_1"],
            "point_coords": np.concatenate([point, np.zeros((1, 2), np.float32)])[None],
            "point_labels": np.array([[1.0, -1.0]], np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32)})
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def measure(source: str, video: str, n_frames: int, threads: int | None) -> dict[str, Any]:
    engine, facts = load(source, threads)
    log: dict[str, list[float]] = defaultdict(list)
    timed = {n: Timed(g, n, log) for n, g in engine.graphs.items()}
    engine.graphs = dict(timed)
    predictor = VideoPredictor(engine, cache_frames=1)
    state = predictor.init_state(video)
    state.frames = state.frames[:n_frames]
    h, w = state.video_hw
    predictor.add_new_points_or_box(state, 0, 1, points=[[w / 2, h / 2]], labels=[1])
    per_frame: list[dict[str, float]] = []
    it = predictor.propagate_in_video(state)
    next(it)  # frame 0: the stored prompt output (and the preflight's memory encoding)
    while True:
        log.clear()
        for backend in timed.values():
            backend.feeds.clear()
        t = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            break
        feeds = {g: list(timed[g].feeds) for g in GRAPHS}
        row = {g: sum(log.get(g, [])) for g in GRAPHS}
        row["total"] = (time.perf_counter() - t) * 1e3
        row["host"] = row["total"] - sum(row[g] for g in GRAPHS)
        per_frame.append(row)
    median = {k: round(statistics.median(r[k] for r in per_frame), 1) for k in per_frame[0]}
    size = engine.config.image_size
    point = np.array([[size / 2, size / 2]], np.float32)
    image_ms = image_mode_ms(engine, [state.frame(t) for t in range(1, len(state.frames))], point)
    cfg = engine.config
    slot_bytes = int(np.prod(cfg.memory_shape)) * 2  # bfloat16
    ptr_bytes = (cfg.ptr_slots or cfg.max_obj_ptrs) * 256 * 4
    bound = (cfg.spatial_slots or cfg.num_maskmem) * slot_bytes + ptr_bytes
    return {"source": source, **facts, "tracked_frames": len(per_frame), "median_ms": median,
            "image_mode_ms": round(image_ms, 1), "video_over_image": round(median["total"] / image_ms, 2),
            "bank_bytes_per_object": state.memory_bytes()[1], "tracker_bound_bytes_per_object": bound,
            "last_frame_feeds": feeds}


def add_floor(rows: list[dict[str, Any]], threads: int | None) -> dict[str, Any]:
    """Each row's GFLOPs per frame and floor ratios (see the module docstring); the peak."""
    from edge_sam_sdk.bench import matmul_peak

    peak = matmul_peak(threads or os.cpu_count() or 1)
    engines: dict[str, VideoEngine] = {}
    for r in rows:
        gflops = frame_gflops(r["variant"], r.pop("last_frame_feeds"), engines)
        total = sum(gflops.values())
        r["gflops_per_frame"] = gflops | {"total": round(total, 3)}
        if peak["gflops"]:
            r["floor_ms"] = round(total / peak["gflops"] * 1e3, 1)
            r["floor_ratio"] = {g: round(r["median_ms"][g] / (v / peak["gflops"] * 1e3), 2)
                                for g, v in gflops.items() if v} | {
                "total": round(r["median_ms"]["total"] / r["floor_ms"], 2)}
    return peak


def table(rows: list[dict[str, Any]], threads: int | None, peak: dict[str, Any]) -> str:
    head = ("| variant | target | " + " | ".join(s.replace("_", " ") for s in STAGES)
            + " | video frame | image mode | video / image | GFLOPs / frame | floor ratio"
            " | predictor bank after clip | tracker bound |")
    lines = [head, "|" + " --- |" * (len(STAGES) + 9)]
    for r in rows:
        m = r["median_ms"]
        lines.append(f"| {r['variant']} | {r['target']} {r['precision']} | "
                     + " | ".join(f"{m[s]:.1f}" for s in STAGES)
                     + f" | {m['total']:.1f} | {r['image_mode_ms']:.1f} | {r['video_over_image']:.2f}"
                     f" | {r['gflops_per_frame']['total']:.1f} | {r.get('floor_ratio', {}).get('total', '-')}"
                     f" | {r['bank_bytes_per_object'] / 2**20:.2f} MiB"
                     f" | {r['tracker_bound_bytes_per_object'] / 2**20:.2f} MiB |")
    lines += ["", f"ms per tracked frame (median over {rows[0]['tracked_frames']} frames), one object, "
              f"{threads or 'default'} threads, all rows in one run of `benchmarks/video.py`; image mode: "
              "encoder + decoder with the click, no memory, same frames and graphs. GFLOPs / frame: matrix "
              "products of the four graphs on the last tracked frame's feeds (static bundles attend to every "
              "slot); floor ratio: video frame / (GFLOPs / peak), fp32 matmul peak "
              f"{peak['gflops'] or 0:.0f} GFLOP/s measured in the same run."]
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Stacked horizontal bars of the per-frame stages, with the image-mode time marked."""
    from PIL import Image, ImageDraw

    top = max(max(r["median_ms"]["total"], r["image_mode_ms"]) for r in rows) * 1.1
    left, right, bar, gap = 230, 40, 26, 14
    width, height = 900, 70 + len(rows) * (bar + gap) + 40
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), "video tracking: ms per frame by graph (| = image mode, same graphs)", fill="black")

    def x(v: float) -> int:
        return int(left + (width - left - right) * v / top)

    for i, r in enumerate(rows):
        y0 = 40 + i * (bar + gap)
        d.text((10, y0 + 7), f"{r['variant']} {r['target']} {r['precision']}", fill="black")
        acc = 0.0
        for s in STAGES:
            v = max(r["median_ms"][s], 0.0)
            d.rectangle([x(acc), y0, x(acc + v), y0 + bar], fill=COLORS[s])
            acc += v
        d.text((x(acc) + 4, y0 + 7), f"{r['median_ms']['total']:.0f} ms", fill="black")
        xi = x(r["image_mode_ms"])
        d.line([xi, y0 - 3, xi, y0 + bar + 3], fill="black", width=3)
    y = height - 30
    for j, s in enumerate(STAGES):
        d.rectangle([left + j * 130, y, left + j * 130 + 12, y + 12], fill=COLORS[s])
        d.text((left + j * 130 + 16, y), s, fill="black")
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", action="append", required=True,
                    help="video bundle folder or torch:VARIANT; repeat to compare in one run")
    ap.add_argument("--video", default=str(DEFAULT_CLIP))
    ap.add_argument("--frames", type=int, default=6, help="frames to track (from frame 0)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--png")
    args = ap.parse_args()
    rows = []
    for source in args.source:
        print(f"measuring {source}", flush=True)
        rows.append(measure(source, args.video, args.frames, args.threads))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "last_frame_feeds"}), flush=True)
    peak = add_floor(rows, args.threads)
    md = table(rows, args.threads, peak)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps({"matmul_peak": peak, "rows": rows}, indent=2) + "\n")
    if args.md:
        Path(args.md).write_text(md + "\n")
    if args.png:
        chart(rows, Path(args.png))


if __name__ == "__main__":
    main()
