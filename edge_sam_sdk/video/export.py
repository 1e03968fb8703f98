"""Export a variant's video mode to a *video bundle* (torch side; ``export`` extra).

A video bundle is a folder with the four graphs of ``docs/video.md`` (``video_encoder``,
``memory_attention``, ``video_decoder``, ``memory_encoder``, one file each in the target's
format) and a ``manifest.json`` whose ``"kind"`` is ``"video"`` and whose ``"video"`` section is
the contract (:class:`~.engine.VideoConfig`: slot counts, ``max_cond``, the slot shape, the
selection rule). The memory-attention graph has static slot counts:
``S = max_cond + num_maskmem - 1`` and ``P = max_cond + max_obj_ptrs - 1``. Each target is one
module ``edge_sam_sdk.exporters.targets.<target>.video`` (:data:`VIDEO_TARGETS`; interface in
``exporters/targets/onnx/video.py``). Written to a temporary sibling folder and renamed when
complete, after each graph's parity with torch is checked where the target runs here.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..bundle import sha256_tree
from ..errors import EdgeSamError
from ..graphs import GraphSpec, parity, parity_ok, sample_feed, video_graph_specs
from ..registry import get_variant
from ..testing import synthetic_array
from .engine import GRAPHS, VideoConfig

VIDEO_FORMAT_VERSION = 1


def video_feed(name: str, spec: GraphSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid inputs for tracing and parity: a few empty slots, positions in [0, 1]."""
    feed = sample_feed(spec, seed=seed, batch=1, points=3)
    if name == "memory_attention":
        shape, p = spec.inputs[1].shape, spec.inputs[4].shape[0]
        s = shape[0]
        assert all(isinstance(d, int) for d in shape) and isinstance(s, int) and isinstance(p, int)
        feed["memory_features"] = synthetic_array(0xF5, tuple(int(d) for d in shape), seed, -1.0, 1.0)
        feed["memory_tpos"] = (np.arange(s) % 7).astype(np.int64)
        feed["memory_valid"] = (np.arange(s) < max(1, s - 2)).astype(np.float32)
        feed["obj_ptr_pos"] = np.linspace(0.0, 1.0, p, dtype=np.float32)
        feed["obj_ptr_valid"] = (np.arange(p) < max(1, p - 3)).astype(np.float32)
    if name == "memory_encoder":
        feed["binarize"] = np.zeros(1, np.float32)
        feed["object_score_logits"] = np.full((1, 1), 0.5, np.float32)
    if name == "video_decoder":
        feed["has_mask_input"] = np.zeros(1, np.float32)
    return {n: feed[n] for n in spec.input_names}


#: target -> the module that writes its graphs (``SUFFIX``, ``RUNTIME``, ``PRECISIONS``,
#: ``check``, ``export_video_graph``).
VIDEO_TARGETS = {"onnx": "edge_sam_sdk.exporters.targets.onnx.video",
                 "tflite": "edge_sam_sdk.exporters.targets.tflite.video",
                 "coreml": "edge_sam_sdk.exporters.targets.coreml.video"}
#: what one spatial memory slot holds, by its shape (the manifest states it for the ports)
SLOT_LAYOUTS = {(64, 64, 64): "64 channels on the 64x64 grid (C x H x W)",
                (512, 64): "512 tokens x 64 channels: the spatial perceiver's 256 global latents, "
                           "then its 256 2-D latents on a 16x16 grid (row-major); object pointers "
                           "carry no temporal position (the graph takes no obj_ptr_pos)"}


def video_target(target: str, precision: str) -> Any:
    """The writer module of ``target``, after its checks (precision, packages)."""
    if target not in VIDEO_TARGETS:
        raise EdgeSamError(f"video bundles are written for targets {sorted(VIDEO_TARGETS)}, not {target!r} "
                           "(TensorRT: build engines from the onnx video bundle's graphs)")
    module = importlib.import_module(VIDEO_TARGETS[target])
    module.check(precision)
    return module


def graph_parity(writer: Any, module: Any, spec: GraphSpec, feed: dict[str, np.ndarray],
                 path: Path, judge: bool = True) -> dict[str, Any]:
    """Parity of the written graph with torch on ``feed``, run by the target's runtime; a
    target this machine cannot run (Core ML off macOS) is recorded as not checked. Without
    ``judge`` (a reduced-precision graph) the figures are reported, not held to the bound."""
    import torch

    from edge_sam_sdk.errors import BackendNotAvailableError
    from edge_sam_sdk.runtimes import backend_class

    try:
        backend = backend_class(writer.RUNTIME)(path)
    except BackendNotAvailableError as exc:
        return {"ok": None, "not_checked": str(exc)}
    with torch.inference_mode():
        ref = module(*(torch.from_numpy(feed[n]) for n in spec.input_names))
    ref = ref if isinstance(ref, tuple) else (ref,)
    got = backend.run(feed)
    figures = {n: parity(r.numpy(), got[n]) for n, r in zip(spec.output_names, ref, strict=True)}
    if not judge:
        return {"ok": None, "outputs": figures}
    ok = all(parity_ok(f, spec) for f in figures.values())
    if not ok:
        raise EdgeSamError(f"{spec.name}: exported graph differs from torch: {figures}")
    return {"ok": ok, "outputs": figures}


def export_video_bundle(variant: str, checkpoint: str, out: str | Path, max_cond: int = 2,
                        overwrite: bool = False, say: Any = None, target: str = "onnx",
                        precision: str = "fp32") -> Path:
    """Export ``variant``'s video graphs with ``checkpoint`` (path or ``synthetic:SEED``) to
    the video bundle ``out`` for ``target``; ``max_cond`` conditioning frames are attended per
    frame. A writer with ``reduce_video_graph`` makes ``precision`` from the fp32 graph, which
    is checked first (``fp32_export_parity``), and :mod:`.calibration` judges it along a short
    track (a graph that leaves the bound stays fp32; the manifest says so per graph)."""
    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.exporters.export import checkpoint_facts

    say = say or (lambda _m: None)
    if max_cond < 1:
        raise EdgeSamError(f"max_cond must be >= 1, got {max_cond}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgeSamError(f"{out} exists and is a file, not a bundle folder; choose another --out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise EdgeSamError(f"{out} exists and is not empty; pass --overwrite to replace it")
    spec = get_variant(variant)
    base = VideoConfig.for_variant(spec)
    writer = video_target(target, precision)
    config = dataclasses.replace(base, max_cond=max_cond, spatial_slots=max_cond + base.num_maskmem - 1,
                                 ptr_slots=max_cond + base.max_obj_ptrs - 1)
    specs = video_graph_specs(spec, config.spatial_slots or 0, config.ptr_slots or 0)
    say(f"building {variant} and loading {checkpoint}")
    assert spec.video is not None
    modules = spec.video.build_graphs(load_model(spec, checkpoint))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        graphs: dict[str, Any] = {}
        checks: dict[str, Any] = {}
        fp32_checks: dict[str, Any] = {}
        reduce = precision != "fp32" and hasattr(writer, "reduce_video_graph")
        scratch = tmp / ".fp32"
        if reduce:
            from .calibration import FRAMES, recorded_track, reduced_graph

            scratch.mkdir()
            say(f"recording each graph's feeds and outputs over a {FRAMES}-frame track "
                f"({precision} is judged on it)")
            tracks = recorded_track(modules, specs, config)
        for name in GRAPHS:
            file = f"{name}{writer.SUFFIX}"
            say(f"exporting {name} ({file}{f', {precision} from fp32' if reduce else ''})")
            feed = video_feed(name, specs[name])
            if not reduce:
                facts = writer.export_video_graph(modules[name], specs[name], feed, tmp / file, precision)
                checks[name] = graph_parity(writer, modules[name], specs[name], feed, tmp / file)
            else:
                facts = writer.export_video_graph(modules[name], specs[name], feed, scratch / file, "fp32")
                fp32_checks[name] = graph_parity(writer, modules[name], specs[name], feed, scratch / file)
                facts |= reduced_graph(writer, scratch / file, tmp / file, feed, tracks[name], precision)
                checks[name] = graph_parity(writer, modules[name], specs[name], feed, tmp / file, judge=False)
                if facts["precision"] != precision:
                    say(f"{name} stays fp32: {facts['kept_fp32']}")
            graphs[name] = specs[name].to_dict() | facts | {"file": file, "sha256": sha256_tree(tmp / file)}
        manifest = {
            "kind": "video", "video_format_version": VIDEO_FORMAT_VERSION, "sdk_version": __version__,
            "variant": spec.name, "family": spec.family, "target": target, "runtime": writer.RUNTIME,
            "precision": precision, "checkpoint": checkpoint_facts(checkpoint), "license": spec.license,
            "created_unix": int(time.time()), "graphs": graphs, "export_parity": checks,
            "video": config.to_dict() | {
                "frame_input": "PIL resize (S, S) BICUBIC of RGB uint8, /255, ImageNet mean/std, NCHW",
                "memory_dtype": "bfloat16 (round to nearest even), fed as float32",
                "memory_slot": SLOT_LAYOUTS.get(config.memory_shape, str(config.memory_shape)),
                "selection": "docs/video.md#memory-slots", "no_obj_score": -1024.0,
                "mem_mask_scale": 20.0, "mem_mask_bias": -10.0, "hole_filling": False}}
        if reduce:
            manifest["fp32_export_parity"] = fp32_checks
            shutil.rmtree(scratch)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"video bundle written to {out}")
    return out
