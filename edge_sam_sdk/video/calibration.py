"""Reduced-precision video graphs, judged along a short track (torch side; ``export`` extra).

``export_video_bundle(..., precision="fp16")`` records what each of the four graphs is fed,
and what our torch graphs return, while they track a click through :data:`FRAMES` crops
panning across a generated scene (:func:`edge_sam_sdk.exporters.calibration.scene`: no photo
is shipped), exactly as the predictor feeds the exported graphs (static slot counts, empty
slots masked). Random sample feeds do not reach the ranges of real frames; this track does.

- The target's ``reduce_video_graph`` picks the nodes that stay float32 from the ranges
  over the track's feeds.
- :func:`reduced_graph` then runs the reduced graph on the same feeds. A graph whose worst
  output is more than :data:`TRACK_BOUND` (rel. L2) from torch stays fp32 in the bundle,
  and the manifest says why. EdgeTAM's encoder with synthetic weights is one such graph:
  its fp16 embeddings are 0.17 off on the track and 0.45 on the truck clip, and the masks
  fall apart.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..graphs import GraphSpec, parity
from .engine import GRAPHS, VideoConfig, VideoEngine

Track = list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]  #: (feed, torch outputs) per call
TRACK_BOUND = 1e-2  #: the worst rel. L2 from torch, along the track, a reduced graph may have
FRAMES = 3  #: frames tracked: the prompted one and two with memory
SIZE = (900, 1200)  #: (height, width) of each crop
STEP = (20, 120)  #: pan per frame, (down, right) pixels


class _Recorder:
    """A backend that keeps a copy of every feed it runs, with what it returned."""

    def __init__(self, backend: Any, track: Track):
        self.backend, self.track = backend, track
        self.inputs, self.outputs = backend.inputs, backend.outputs

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(self.backend.run(feed))
        self.track.append(({n: np.array(v) for n, v in feed.items()}, out))
        return out


def pan_frames(frames: int = FRAMES, seed: int = 1) -> list[np.ndarray]:
    """``frames`` ``HxWx3`` uint8 crops of one generated scene, panning right and down."""
    from edge_sam_sdk.exporters.calibration import scene

    h, w = SIZE
    picture = scene(seed, h + STEP[0] * frames, w + STEP[1] * frames)
    return [np.ascontiguousarray(picture[i * STEP[0]:i * STEP[0] + h, i * STEP[1]:i * STEP[1] + w])
            for i in range(frames)]


def recorded_track(modules: dict[str, Any], specs: dict[str, GraphSpec],
                   config: VideoConfig) -> dict[str, Track]:
    """Per graph, its feeds and outputs while the torch ``modules`` track a click at the
    centre of frame 0 of :func:`pan_frames` (``config``: the bundle's static slot counts)."""
    from edge_sam_sdk.runtimes.torch_backend import TorchBackend

    from .predictor import VideoPredictor

    tracks: dict[str, Track] = {g: [] for g in GRAPHS}
    engine = VideoEngine({g: _Recorder(TorchBackend(modules[g], specs[g].input_names, specs[g].output_names),
                                       tracks[g]) for g in GRAPHS}, config)
    predictor = VideoPredictor(engine, cache_frames=FRAMES)
    state = predictor.init_state(pan_frames())
    h, w = SIZE
    predictor.add_new_points_or_box(state, 0, 1, points=[[w / 2, h / 2]], labels=[1])
    for _ in predictor.propagate_in_video(state):
        pass
    return tracks


def track_error(backend: Any, track: Track) -> float:
    """The worst rel. L2 of ``backend``'s outputs from the recorded torch outputs."""
    return max(parity(out[n], backend.run(feed)[n])["rel_l2"] for feed, out in track for n in out)


def reduced_graph(writer: Any, src: Path, dst: Path, sample: dict[str, np.ndarray], track: Track,
                  precision: str) -> dict[str, Any]:
    """Write ``precision`` of the checked fp32 graph ``src`` to ``dst`` with the target's
    ``writer``, or ``src`` itself where the reduced graph leaves :data:`TRACK_BOUND`;
    returns the graph's manifest facts (``precision``, ``track_rel_l2``, the writer's)."""
    from edge_sam_sdk.runtimes import backend_class

    facts = writer.reduce_video_graph(src, dst, [sample, *(feed for feed, _ in track)], precision)
    error = track_error(backend_class(writer.RUNTIME)(dst), track)
    facts |= {"precision": precision, "track_rel_l2": error, "track_bound": TRACK_BOUND}
    if error > TRACK_BOUND:
        shutil.copyfile(src, dst)
        facts |= {"precision": "fp32", "kept_fp32": f"{precision} is rel. L2 {error:.3g} from torch "
                  f"along the calibration track (bound {TRACK_BOUND:g})"}
    return facts
