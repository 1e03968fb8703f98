"""``edgesam trt-check`` (can TensorRT take these graphs?) and ``trt-adopt`` (engines rebuilt on a device)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError
from .arguments import output_file, say, write_json


def run_check(args: argparse.Namespace) -> int:
    from ..bundle import bundle_file, read_manifest
    from ..exporters.targets.tensorrt.readiness import check_file, format_report

    json_path = output_file(args.json, "--json")
    path = Path(args.path)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise InputError(f"{path}: no such ONNX file")
        reports = {path.name: check_file(path)}
    elif _is_video_bundle(path):  # docs/video.md: the four graphs, and the int32-input rewrite's verdict
        from ..exporters.targets.tensorrt.video import check_video_bundle

        reports = check_video_bundle(path)
    else:
        graphs = read_manifest(path)["graphs"]
        files = {n: bundle_file(path, g.get("onnx_file", g["file"]), n) for n, g in graphs.items()}
        reports = {name: check_file(f) for name, f in files.items()}
    for name, report in reports.items():
        print(format_report(report, name))
        if "int32_inputs" in report:
            fixed = "ready" if report["int32_inputs"]["ok"] else "still NOT ready"
            print(f"  with int32 graph inputs (exporters.targets.tensorrt.video.with_int32_inputs): {fixed}")
    if json_path is not None:
        write_json(json_path, reports)
    return 0 if all(r["ok"] for r in reports.values()) else 1


def _is_video_bundle(path: Path) -> bool:
    """Whether ``path`` holds a video manifest; the video reader says what else is wrong with it."""
    import json

    try:
        return json.loads((path / "manifest.json").read_text()).get("kind") == "video"
    except (OSError, ValueError, AttributeError):
        return False  # read_manifest says what is wrong


def run_adopt(args: argparse.Namespace) -> int:
    from ..runtimes import backend_class

    backend_class("tensorrt")  # a clear error when tensorrt or pycuda is missing
    from ..runtimes.tensorrt_backend import adopt_engines

    facts = adopt_engines(args.bundle)
    say(f"recorded the engines of {args.bundle}: TensorRT {facts['version']} on {facts['gpu']['name']} "
         f"(sm {facts['gpu']['compute_capability']})")
    return 0


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("trt-check", help="can TensorRT 8.6-10.x take a bundle's (or an .onnx file's) graphs?")
    c.add_argument("path", help="bundle folder or .onnx file")
    c.add_argument("--json", help="write the reports as JSON")
    c.set_defaults(fn=run_check)

    a = sub.add_parser("trt-adopt", help="record engines rebuilt on this device (trtexec.sh) in the manifest")
    a.add_argument("bundle")
    a.set_defaults(fn=run_adopt)
