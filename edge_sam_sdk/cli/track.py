"""``edgesam track``: track one object through a video from a click or a box (SAM 2.1), and
``edgesam export-video``: write the video bundle it runs.

``BUNDLE`` is a video bundle (``edge_sam_sdk.video.export``) or ``torch:VARIANT`` for the torch
reference (with ``--checkpoint``). The object is prompted on ``--frame`` and tracked forward
to the end, then backward to frame 0. Writes an overlay video (``.mp4``/``.gif``: the ``video``
extra) or a folder of PNG overlays, and with ``--json`` one COCO RLE per frame.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .arguments import box_arg, floats, say

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".gif", ".webm")


def point_arg(text: str) -> list[float]:
    """``X,Y`` (positive) or ``X,Y,LABEL`` (1 positive, 0 negative)."""
    n = len(text.split(","))
    values = floats(text, 3 if n == 3 else 2, "--point X,Y[,LABEL]")
    if len(values) == 2:
        values.append(1.0)
    if values[2] not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"point label must be 1 (foreground) or 0 (background): {text!r}")
    return values


def _predictor(args: argparse.Namespace) -> Any:
    from ..video import VideoPredictor

    if str(args.bundle).startswith("torch:"):
        return VideoPredictor.from_torch(str(args.bundle)[6:], args.checkpoint or "synthetic:0")
    if args.checkpoint:
        raise InputError("--checkpoint is for torch:VARIANT; a bundle carries its weights")
    from ..video.bundle import load_video_engine

    return VideoPredictor(load_video_engine(args.bundle, backend=args.backend, threads=args.threads))


def _write_overlays(frames: list[np.ndarray], out: Path, fps: float) -> None:
    """Overlay frames to a video file (imageio) or a folder of ``00000.png``.., atomically."""
    from PIL import Image

    if out.suffix.lower() in VIDEO_SUFFIXES:
        try:
            import imageio.v3 as iio
        except ImportError:
            raise InputError("writing video files needs imageio and av: pip install 'edgesam[video]' "
                             "(or pass a folder as --out)") from None
        from ..atomic import atomic_path

        stack = np.stack(frames)
        with atomic_path(out) as tmp:
            if out.suffix.lower() == ".gif":
                iio.imwrite(tmp, stack, duration=1000 / fps, loop=0)
            else:  # H.264 needs even sides: drop a last odd row / column
                h, w = stack.shape[1] // 2 * 2, stack.shape[2] // 2 * 2
                iio.imwrite(tmp, stack[:, :h, :w], plugin="pyav", codec="libx264", fps=fps)
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out} exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for i, f in enumerate(frames):
            Image.fromarray(f).save(tmp_dir / f"{i:05d}.png")
        if out.exists():
            out.rmdir()
        tmp_dir.rename(out)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..everything.mask_ops import coco_encode_rle, mask_to_rle
    from ..visualize import color_overlay
    from .arguments import output_file, write_json

    if not args.point and not args.box:
        raise InputError("give a prompt: --point X,Y[,LABEL] (repeatable) and/or --box X0,Y0,X1,Y1")
    out = Path(args.out)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        output_file(args.out, "--out")
    json_path = output_file(args.json, "--json")
    predictor = _predictor(args)
    state = predictor.init_state(args.video)
    points = np.array([p[:2] for p in args.point], np.float32) if args.point else None
    labels = np.array([p[2] for p in args.point], np.float32) if args.point else None
    predictor.add_new_points_or_box(state, args.frame, args.obj_id, points=points, labels=labels,
                                    box=args.box)
    masks: dict[int, np.ndarray] = {}
    with tqdm(total=state.num_frames, desc="tracking", unit="frame", disable=args.quiet) as bar:
        for reverse in (False, True):
            if reverse and args.frame == 0:
                break
            for frame_idx, _ids, logits in predictor.propagate_in_video(state, start_frame_idx=args.frame,
                                                                        reverse=reverse):
                if frame_idx not in masks:
                    bar.update(1)
                masks[frame_idx] = logits[0, 0] > 0
    overlays = [color_overlay(state.frame(t), [masks[t]]) for t in range(state.num_frames)]
    _write_overlays(overlays, out, args.fps)
    if json_path is not None:
        write_json(json_path, {
            "video": str(args.video), "video_size": list(state.video_hw), "bundle": str(args.bundle),
            "obj_id": args.obj_id, "prompt_frame": args.frame,
            "frames": [{"frame": t, "area": int(masks[t].sum()),
                        "segmentation": coco_encode_rle(mask_to_rle(masks[t]))}
                       for t in range(state.num_frames)]})
    areas = [int(masks[t].sum()) for t in range(state.num_frames)]
    say(f"tracked object {args.obj_id} over {state.num_frames} frames")
    print(json.dumps({"out": str(out), "json": args.json, "frames": state.num_frames, "areas": areas}))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..video.export import export_video_bundle

    out = export_video_bundle(args.variant, args.checkpoint, args.out, max_cond=args.max_cond_frames,
                              overwrite=args.overwrite, say=say, target=args.target,
                              precision=args.precision)
    print(json.dumps({"bundle": str(out)}))
    return 0


def add_parser(sub: Any) -> None:
    """Registers ``track`` and ``export-video``."""
    e = sub.add_parser("export-video", help="export a video bundle (SAM 2.1, EdgeTAM; docs/video.md)")
    e.add_argument("--variant", default="sam2_1_hiera_tiny")
    e.add_argument("--target", default="onnx", help="onnx (default), tflite or coreml")
    e.add_argument("--precision", default="fp32", help="fp32 (default); fp16 for onnx and coreml")
    e.add_argument("--checkpoint", required=True, help="official checkpoint file or synthetic:SEED")
    e.add_argument("--out", required=True)
    e.add_argument("--max-cond-frames", type=int, default=2,
                   help="conditioning frames attended per frame (static memory slots: this + 6)")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(fn=run_export)
    a = sub.add_parser("track", help="track an object through a video (a video bundle)")
    a.add_argument("bundle", help="video bundle folder, or torch:VARIANT for the torch reference")
    a.add_argument("--video", required=True, help="folder of frames (00000.jpg, ...) or a video file")
    a.add_argument("--point", type=point_arg, action="append", default=[],
                   help="X,Y[,LABEL] in frame pixels (label 1 default, 0 negative); repeatable")
    a.add_argument("--box", type=box_arg, help="X0,Y0,X1,Y1 in frame pixels")
    a.add_argument("--frame", type=int, default=0, help="the frame the prompt is on (default 0)")
    a.add_argument("--obj-id", type=int, default=1)
    a.add_argument("--out", required=True, help="overlay video (.mp4, .gif: the video extra) or a folder")
    a.add_argument("--json", help="write per-frame masks (COCO RLE) as JSON")
    a.add_argument("--fps", type=float, default=10.0)
    a.add_argument("--checkpoint", help="with torch:VARIANT: official checkpoint or synthetic:SEED")
    a.add_argument("--threads", type=int)
    a.add_argument("--backend", help="runtime of the bundle's graphs (default: the one of its target)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(fn=run)
