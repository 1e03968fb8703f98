"""The ``edgesam`` command line: list, export, predict, everything, verify, bench, vectors, demo,
trt-check, trt-adopt (one module per subcommand in this package).

Errors print one line (``edgesam: error: ...``) and exit with status 1 (2 for usage); every
argument is checked before any work starts, outputs are written atomically, and Ctrl-C exits
with status 130 leaving nothing half-written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import EdgeSamError
from . import bench, demo, everything, export, fetch, label, list_variants, predict, tensorrt, vectors, verify
from .arguments import Parser, join_signed_values
from .track import add_parser as add_track_parser


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="edgesam", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--version", action="version", version=f"edgesam {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (list_variants, fetch, export, predict, everything, label, verify, bench, vectors):
        command.add_parser(sub)
    tensorrt.add_parsers(sub)
    demo.add_parser(sub)
    add_track_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(join_signed_values(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.fn(args))
    except EdgeSamError as exc:
        print(f"edgesam: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgesam: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("edgesam: error: out of memory (a smaller image or fewer prompts per call?)", file=sys.stderr)
        return 1
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        print(f"edgesam: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
