"""``edgesam list``: the registered variants, their targets, checkpoint files and whether the
official checkpoint is cached (``yes``, ``n/m`` files, ``no``; ``-``: no direct download)."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import cache_state
    from ..registry import get_variant, list_variants

    rows = [("variant", "family", "input", "decoder", "targets", "checkpoint", "cached", "license")]
    for name in list_variants():
        s = get_variant(name)
        rows.append((name, s.family, str(s.processing.input_size), s.decoder_kind, ",".join(s.targets),
                     ",".join(s.checkpoint.files), cache_state(name), s.license))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0


def add_parser(sub: Any) -> None:
    sub.add_parser("list", help="list registered variants and their targets").set_defaults(fn=run)
