"""Argument parsing shared by the subcommands, and progress output (stderr)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError


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
    return floats(text, 4, "--box X0,Y0,X1,Y1")


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
