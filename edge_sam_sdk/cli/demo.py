"""``edgesam demo``: export a variant and segment the built-in demo image (the README's first command).

By default it uses the variant's official checkpoint, from the cache or downloaded (a 3 s
reachability check first, so an offline machine never hangs); offline, or when the
download fails, one note line says so and it falls back to synthetic weights as before.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgeSamError
from .arguments import say
from .predict import segment

#: seconds the demo waits for the checkpoint host to answer before falling back
CONNECT_TIMEOUT = 3.0


def choose_checkpoint(variant: str, checkpoint: str | None, note: Any = say) -> str:
    """What the demo exports with: ``checkpoint`` resolved (official references fetched);
    by default the official checkpoint, else ``synthetic:0`` after one ``note`` line."""
    from ..checkpoints import resolve_checkpoint

    if checkpoint is not None:
        return resolve_checkpoint(checkpoint, variant)
    try:
        return resolve_checkpoint("official", variant, timeout=(CONNECT_TIMEOUT, 30.0),
                                  probe_timeout=CONNECT_TIMEOUT, say=note)
    except EdgeSamError as exc:
        note(f"note: no official {variant} checkpoint ({exc}); using synthetic weights")
        return "synthetic:0"


def _exported_with(bundle: Path, checkpoint: str) -> bool:
    """Whether ``bundle`` exists and was exported from ``checkpoint`` (so it is reused)."""
    from ..checkpoints import recorded_sha256

    try:
        recorded = json.loads((bundle / "manifest.json").read_text()).get("checkpoint") or {}
    except (OSError, ValueError, AttributeError):
        return False
    if checkpoint.startswith("synthetic:"):
        return bool(recorded.get("source") == checkpoint)
    digests = [recorded_sha256(Path(p)) for p in checkpoint.split(",")]
    return None not in digests and recorded.get("sha256") == ",".join(d or "" for d in digests)


def run(args: argparse.Namespace) -> int:
    from ..exporters.export import export_bundle
    from ..visualize import demo_image, overlay, save_png

    out = Path(args.out)
    bundle = out / f"{args.variant}_onnx"
    checkpoint = choose_checkpoint(args.variant, args.checkpoint)
    if not _exported_with(bundle, checkpoint):
        export_bundle(args.variant, checkpoint, bundle, overwrite=True, progress=say)
    image = demo_image()
    save_png(image, out / "demo_image.png")
    h, w = image.shape[:2]
    points = [[0.3 * w, 0.55 * h, 1.0], [0.66 * w, 0.4 * h, 0.0]]
    masks, scores, _, timings, _ = segment(str(bundle), image, points, [], True, "auto", None)
    best = int(np.argmax(scores))
    pts = np.array(points)
    save_png(overlay(image, masks[[best]], pts[:, :2], pts[:, 2]), out / "demo_overlay.png")
    summary = {"bundle": str(bundle), "overlay": str(out / "demo_overlay.png"),
               "iou_predictions": [round(float(s), 4) for s in scores],
               "timings_ms": {k: round(v, 1) for k, v in timings.items()}}
    (out / "demo_timings.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if checkpoint.startswith("synthetic:"):
        say(f"note: synthetic weights give meaningless masks; run `edgesam fetch {args.variant}` where "
            "the network allows, or pass --checkpoint with an official file, for real segmentation")
    return 0


def add_parser(sub: Any) -> None:
    d = sub.add_parser("demo", help="export a variant and segment the built-in demo image")
    d.add_argument("--variant", default="mobile_sam")
    d.add_argument("--checkpoint", default=None,
                   help="checkpoint file, official, or synthetic:SEED (default: the official checkpoint, "
                        "from the cache or downloaded; synthetic:0 when that fails, e.g. offline)")
    d.add_argument("--out", default="edgesam_demo")
    d.set_defaults(fn=run)
