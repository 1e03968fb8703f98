"""``edgesam verify``: parity of a bundle against the torch model built from a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .arguments import output_file, say, write_json


def run(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..checkpoints import resolve_checkpoint
    from ..exporters.verify import format_table, verify_bundle
    from ..visualize import demo_image, load_image

    json_path = output_file(args.json, "--json")
    image = load_image(args.image) if args.image else demo_image()
    bundle = load_bundle(args.bundle, backend=args.backend)
    say(f"verifying {args.bundle} ({bundle.variant}, {bundle.manifest['target']}) against "
         f"torch with {args.checkpoint}")
    name = Path(args.image).name if args.image else "demo_image"
    if bundle.manifest.get("precision", "fp32") != "fp32":
        say(f"{bundle.manifest['precision']} bundle: exporting an fp32 reference from the same "
             "checkpoint for the quality report")
    checkpoint = resolve_checkpoint(args.checkpoint, bundle.variant, say=say)  # official -> cached files
    report = verify_bundle(bundle, checkpoint, image, image_name=name, progress=say)
    print(format_table(report))
    if json_path is not None:
        write_json(json_path, report)
    return 0 if report["ok"] else 1


def add_parser(sub: Any) -> None:
    v = sub.add_parser("verify", help="parity of a bundle against the torch model")
    v.add_argument("bundle")
    v.add_argument("--checkpoint", required=True,
                   help="checkpoint file; official (the variant's official file, cached or downloaded); "
                        "or synthetic:SEED")
    v.add_argument("--image", help="image for the end-to-end check (default: built-in demo image)")
    v.add_argument("--backend", default="auto")
    v.add_argument("--json", help="write the report as JSON (the folder must exist)")
    v.set_defaults(fn=run)
