"""``edgesam export``: its flags, how they become a target's options, and the command."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from .arguments import say

#: ``export`` flags that only some targets take: the flag's attribute -> those targets.
_TARGET_FLAGS = {"max_points": ("tensorrt", "coreml"), "max_prompts": ("tensorrt", "coreml"),
                 "workspace_mb": ("tensorrt",), "calibration_cache": ("tensorrt",),
                 "weights_int8": ("coreml",), "palettize": ("coreml",), "deployment_target": ("coreml",),
                 "decoder_points": ("tflite",), "from_fp32": ("tflite",)}


def _target_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``export_bundle`` options of ``args.target`` from the command line flags."""
    from ..visualize import load_image

    given = {k: getattr(args, k) for k in _TARGET_FLAGS if getattr(args, k) not in (None, False)}
    wrong = [k for k in given if args.target not in _TARGET_FLAGS[k]]
    if wrong:
        flags = ", ".join("--" + k.replace("_mb", "").replace("_", "-") for k in wrong)
        targets = " or ".join(_TARGET_FLAGS[wrong[0]])
        raise InputError(f"{flags} apply to --target {targets}, not {args.target}")
    options: dict[str, Any] = {"simplify": False if args.no_simplify else None,
                               "tensorrt_ready": args.tensorrt_ready}
    if args.target == "tensorrt":
        cal = {"calibration_images": args.calibration_images} if args.calibration_images else {}
        options["tensorrt"] = (given | cal) or None
    elif args.target == "coreml":
        options["target_options"] = given or None
    elif args.target == "tflite":
        options["tflite"] = {"decoder_points": args.decoder_points, "fp32_bundle": args.from_fp32}
    reduced = args.precision != "fp32" and args.target in ("onnx", "tflite")
    if not reduced and (args.quality_image or (args.calibration_images and args.target != "tensorrt")):
        raise InputError("--calibration-images and --quality-image apply to --precision fp16|int8 "
                         "(targets onnx, tflite; tensorrt int8 also takes --calibration-images)")
    if reduced:
        options.update(calibration_images=args.calibration_images,
                       quality_images=[(Path(p).name, load_image(p)) for p in args.quality_image or []])
    if reduced and args.target == "onnx":
        from ..exporters.targets.onnx.quantization import Int8Config

        options.update(bimodal_fix=not args.no_bimodal_fix, int8=Int8Config(scheme=args.int8_scheme))
    elif args.no_bimodal_fix or args.int8_scheme != "u8s8":
        raise InputError("--no-bimodal-fix and --int8-scheme apply to --target onnx --precision int8|fp16")
    return options


def run(args: argparse.Namespace) -> int:
    from ..bundle import read_manifest
    from ..checkpoints import resolve_checkpoint
    from ..exporters.export import export_bundle

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {args.out}: is a file; a bundle is a folder, choose another path")
    options = _target_options(args)
    t0 = time.perf_counter()
    checkpoint = resolve_checkpoint(args.checkpoint, args.variant, say=say)  # official -> cached files
    out = export_bundle(args.variant, checkpoint, args.out, target=args.target,
                        precision=args.precision, overwrite=args.overwrite, progress=say, **options)
    quality = read_manifest(out).get("quality")
    if quality:
        from ..exporters.quality import format_report

        print(format_report(quality))
    say(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def add_parser(sub: Any) -> None:
    """The ``export`` sub-command and its flags on ``sub`` (``add_subparsers()``)."""
    e = sub.add_parser("export", help="export a variant to a bundle")
    e.add_argument("--variant", required=True)
    e.add_argument("--checkpoint", required=True,
                   help="checkpoint file (NanoSAM: two joined with ','); official (or the variant's name): "
                        "the official file, from the cache or downloaded (docs/checkpoints.md); "
                        "or synthetic:SEED")
    e.add_argument("--target", default="onnx")
    e.add_argument("--precision", default="fp32",
                   help="fp32 (default); fp16: onnx, tflite, coreml, tensorrt; int8: onnx, tflite, tensorrt")
    e.add_argument("--calibration-images", metavar="DIR",
                   help="reduced precision: folder of images to calibrate on (onnx fp16/int8: every 5th is "
                        "held out for the quality report); default: 8 generated scenes")
    e.add_argument("--no-bimodal-fix", action="store_true",
                   help="int8: skip the PTQ4SAM query/key sign flip before calibration")
    e.add_argument("--int8-scheme", default="u8s8",
                   help="int8: u8s8 (default; uint8 activations, fastest on x86 CPUs) or s8s8 "
                        "(symmetric int8 activations, zero point 0: the QDQ form TensorRT takes)")
    e.add_argument("--quality-image", action="append", metavar="PATH",
                   help="fp16/int8: also compare with fp32 on this image in the quality report; repeatable")
    e.add_argument("--out", required=True, help="bundle folder to write")
    e.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")
    e.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    e.add_argument("--tensorrt-ready", action="store_true",
                   help="onnx: graphs for TensorRT 8.6-10.x (no onnxruntime-only fusions); fails listing "
                        "anything TensorRT cannot take")
    e.add_argument("--max-points", type=int, help="tensorrt, coreml: most decoder points per prompt, box "
                   "corners and padding point included (default 16)")
    e.add_argument("--max-prompts", type=int, help="tensorrt, coreml: most prompts per decoder run "
                   "(default: tensorrt 8, coreml 64)")
    g = e.add_argument_group("target tensorrt (TensorRT, pycuda and an NVIDIA GPU)")
    g.add_argument("--workspace", dest="workspace_mb", type=int,
                   help="builder workspace in MiB (default 1024)")
    g.add_argument("--calibration-cache", help="int8: reuse this calibration cache instead")
    m = e.add_argument_group("target coreml (mlprogram; converts anywhere, runs on macOS)")
    m.add_argument("--weights-int8", action="store_true", help="store weights as int8")
    m.add_argument("--palettize", type=int, metavar="BITS", help="k-means weight palettes (1-8 bits)")
    m.add_argument("--deployment-target", help="minimum deployment target (default iOS17)")
    lt = e.add_argument_group("target tflite (LiteRT, through litert-torch)")
    lt.add_argument("--decoder-points", metavar="LO-HI",
                   help="prompt point counts the decoder takes, one signature each (default 0-16; "
                        "e.g. 1-4,16)")
    lt.add_argument("--from-fp32", metavar="BUNDLE",
                   help="fp16/int8: quantize this fp32 tflite bundle's graphs instead of converting again")
    e.set_defaults(fn=run)
