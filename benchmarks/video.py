"""Video tracking cost per frame: latency split by graph, and memory-bank bytes per object.

    python benchmarks/video.py --bundle bundles/sam2_video --video ../shared/video/truck_pan
    python benchmarks/video.py --torch sam2_1_hiera_tiny --frames 4 --json video_bench.json

One object is prompted with a click at the frame centre on frame 0 and propagated forward.
Each graph's ``run`` is timed (wall clock, ``time.perf_counter``); reported per tracked frame
(frame 0, the prompt, is excluded): ``video_encoder``, ``memory_attention``, ``video_decoder``,
``memory_encoder`` and ``host`` (everything else: frame loading and resizing, slot selection,
bfloat16 rounding, mask upsampling) in ms, as median over frames, plus the bank's bytes per
object after the last frame (``VideoState.memory_bytes``) and the streaming ``Tracker``'s bound.
With synthetic weights the masks are meaningless; the cost is the same as with real ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.video import VideoPredictor
from edge_sam_sdk.video.engine import GRAPHS

DEFAULT_CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "video" / "truck_pan"


class Timed:
    """A graph backend whose ``run`` adds its wall time to ``log[name]``."""

    def __init__(self, inner: Any, name: str, log: dict[str, list[float]]):
        self.inner, self.name, self.log = inner, name, log
        self.inputs, self.outputs = inner.inputs, inner.outputs

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = time.perf_counter()
        out = self.inner.run(feed)
        self.log[self.name].append((time.perf_counter() - t) * 1e3)
        return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", help="video bundle folder (onnxruntime)")
    src.add_argument("--torch", help="variant for the torch reference (synthetic weights)")
    ap.add_argument("--video", default=str(DEFAULT_CLIP))
    ap.add_argument("--frames", type=int, default=6, help="frames to track (from frame 0)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json")
    args = ap.parse_args()

    if args.bundle:
        from edge_sam_sdk.video.bundle import load_video_engine

        engine = load_video_engine(args.bundle, threads=args.threads)
    else:
        from edge_sam_sdk.video.reference import torch_engine

        engine = torch_engine(args.torch, "synthetic:0", threads=args.threads)
    log: dict[str, list[float]] = defaultdict(list)
    engine.graphs = {n: Timed(g, n, log) for n, g in engine.graphs.items()}
    predictor = VideoPredictor(engine, cache_frames=1)
    state = predictor.init_state(args.video)
    state.frames = state.frames[: args.frames]
    h, w = state.video_hw
    predictor.add_new_points_or_box(state, 0, 1, points=[[w / 2, h / 2]], labels=[1])
    log.clear()
    per_frame: list[dict[str, float]] = []
    it = predictor.propagate_in_video(state)
    next(it)  # frame 0: the stored prompt output (and the preflight's memory encoding)
    while True:
        log.clear()
        t = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            break
        total = (time.perf_counter() - t) * 1e3
        row = {g: sum(log.get(g, [])) for g in GRAPHS}
        row["host"] = total - sum(row.values())
        row["total"] = total
        per_frame.append(row)
    median = {k: round(statistics.median(r[k] for r in per_frame), 1) for k in per_frame[0]}
    cfg = engine.config
    slots = (cfg.spatial_slots or cfg.num_maskmem) * 64 * 64 * 64 * 2
    result = {"source": args.bundle or f"torch:{args.torch}", "tracked_frames": len(per_frame),
              "median_ms": median, "bank_bytes_per_object": state.memory_bytes(),
              "tracker_bound_bytes_per_object": slots + (cfg.ptr_slots or cfg.max_obj_ptrs) * 1024}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
