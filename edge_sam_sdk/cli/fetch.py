"""``edgesam fetch``: download variants' official checkpoints into the cache, verified.

Prints one cached path per line (stdout); progress and notes go to stderr. ``--all``
fetches every variant whose files have a direct download and skips the others (SlimSAM
is on Google Drive, NanoSAM's encoder is published as ONNX only), naming them.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import CheckpointError, InputError
from .arguments import say


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import cache_dir, fetch_variant, source_url
    from ..registry import get_variant, list_variants

    if bool(args.variant) == bool(args.all):
        raise InputError("name the variants to fetch (see `edgesam list`) or pass --all, not both")
    names = list_variants() if args.all else list(dict.fromkeys(args.variant))
    specs = {name: get_variant(name) for name in names}  # an unknown name fails before any download
    if args.all:
        hand = [n for n, s in specs.items()
                if any(source_url(s.checkpoint, f) is None for f in s.checkpoint.official_files())]
        if hand:
            say(f"skipping {', '.join(hand)}: no direct download (see docs/checkpoints.md)")
        names = [n for n in names if n not in hand]
        known = sum(s.checkpoint.size.get(f, 0) for n in names for s in [specs[n]]
                    for f in s.checkpoint.official_files())
        say(f"fetching {len(names)} variants into {cache_dir()} (at least {known / 1e9:.1f} GB)")
    failed = []
    for name in names:
        try:
            for path in fetch_variant(name, say=say):
                print(path, flush=True)
        except CheckpointError as exc:
            if not args.all:
                raise
            say(f"{name}: {exc}")
            failed.append(name)
    if failed:
        say(f"{len(failed)} of {len(names)} variants not fetched: {', '.join(failed)}")
        return 1
    return 0


def add_parser(sub: Any) -> None:
    f = sub.add_parser("fetch", help="download official checkpoints into the cache (verified)")
    f.add_argument("variant", nargs="*", help="variant names (see `edgesam list`)")
    f.add_argument("--all", action="store_true", help="every variant that has a direct download")
    f.set_defaults(fn=run)
