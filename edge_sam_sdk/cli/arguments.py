"""Argument parsing shared by the subcommands, and progress output (stderr)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

#: Options whose values may start with "-" (a negative coordinate): ``--point -50,-20,1``.
_SIGNED_OPTIONS = ("--point", "--box")
_SIGNED_VALUE = re.compile(r"^-[0-9.]")


class Parser(argparse.ArgumentParser):
    """``argparse`` with usage errors on one line, ``edgesam: error: ...`` (exit status 2)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"edgesam: error: {self.prog}: {message} (see '{self.prog} --help')\n")


def join_signed_values(argv: Sequence[str]) -> list[str]:
    """``--point -50,-20,1`` -> ``--point=-50,-20,1``: argparse would read a value starting
    with ``-`` as an option (``--point=-50,-20,1`` works as typed too)."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if args[i] in _SIGNED_OPTIONS and i + 1 < len(args) and _SIGNED_VALUE.match(args[i + 1]):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def output_file(path: str | None, flag: str) -> Path | None:
    """Check an output file argument before any work: its folder exists, it is no folder."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{flag} {path}: is a folder; give a file name")
    if not p.parent.is_dir():
        raise InputError(f"{flag} {path}: folder {str(p.parent)!r} does not exist; create it first")
    return p


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (never a partial file)."""
    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")


def say(msg: str) -> None:
    """Progress and notes go to stderr, so stdout stays machine-readable."""
    print(msg, file=sys.stderr, flush=True)


def floats(text: str, n: int, what: str) -> list[float]:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated numbers, got {text!r}")
    return values


def point_arg(text: str) -> list[float]:
    x, y, label = floats(text, 3, "--point X,Y,LABEL")
    if label not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"point label must be 1 (foreground) or 0 (background): {text!r}")
    return [x, y, label]


def box_arg(text: str) -> list[float]:
    x0, y0, x1, y1 = floats(text, 4, "--box X0,Y0,X1,Y1")
    if not (x1 > x0 and y1 > y0):
        raise argparse.ArgumentTypeError(f"--box X0,Y0,X1,Y1 needs X1 > X0 and Y1 > Y0, got {text!r}")
    return [x0, y0, x1, y1]


def read_boxes(path: str) -> list[list[float]]:
    """Boxes from a JSON file: ``[[x0, y0, x1, y1], ...]`` or ``{"boxes": [...]}``."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"boxes file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} as JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("boxes")
    try:
        boxes = [[float(v) for v in box] for box in data]
    except (TypeError, ValueError):
        boxes = []
    if not boxes or any(len(b) != 4 for b in boxes):
        raise InputError(f"{path} must hold boxes: [[x0, y0, x1, y1], ...] or {{\"boxes\": [...]}}")
    return boxes
