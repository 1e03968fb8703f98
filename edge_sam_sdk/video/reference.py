"""The torch reference backend of video mode: our torch graphs, run in-process.

Needs the ``export`` extra (torch). The memory-attention graph here takes any slot count, so
the host passes exactly the selected memories (no padding).
"""

from __future__ import annotations

from ..graphs import video_graph_specs
from ..registry import get_variant
from .engine import VideoConfig, VideoEngine


def torch_engine(variant: str = "sam2_1_hiera_tiny", checkpoint: str = "synthetic:0",
                 threads: int | None = None) -> VideoEngine:
    """A :class:`VideoEngine` on ``variant``'s torch model with ``checkpoint`` (a path to the
    official checkpoint, or ``synthetic:SEED``)."""
    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.runtimes.torch_backend import TorchBackend

    spec = get_variant(variant)
    config = VideoConfig.for_variant(spec)
    specs = video_graph_specs(spec)
    assert spec.video is not None
    modules = spec.video.build_graphs(load_model(spec, checkpoint))
    graphs = {name: TorchBackend(mod, specs[name].input_names, specs[name].output_names, threads)
              for name, mod in modules.items()}
    return VideoEngine(graphs, config)
