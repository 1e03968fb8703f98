"""``edgesam vectors``: processing test vectors for the ports (Kotlin, Swift, ...)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from .arguments import say


def run(args: argparse.Namespace) -> int:
    from ..registry import get_variant
    from ..vectors import VARIANTS, write_vectors

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise InputError(f"--out {args.out}: is a file; the vectors are a folder, choose another path")
    variants = tuple(args.variant) if args.variant else VARIANTS
    for v in variants:
        get_variant(v)  # unknown names fail here, before anything is written
    out = write_vectors(args.out, variants, large=not args.small, overwrite=args.overwrite,
                        progress=lambda m: say(f"vectors: {m}"))
    cases = len(json.loads((out / "index.json").read_text())["cases"])
    print(json.dumps({"vectors": str(out), "cases": cases}))
    return 0


def add_parser(sub: Any) -> None:
    t = sub.add_parser("vectors", help="write processing test vectors for ports (Kotlin, Swift, ...)")
    t.add_argument("--out", required=True, help="folder to write (index.json + .npy arrays)")
    t.add_argument("--variant", action="append", help="variant whose processing to cover; repeatable "
                   "(default: a set that uses every processing rule)")
    t.add_argument("--small", action="store_true", help="skip the large (shrinking) images")
    t.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    t.set_defaults(fn=run)
