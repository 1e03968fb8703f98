"""``edgesam bench``: encoder and per-prompt decoder latency of a bundle, GFLOPs, floor ratios."""

from __future__ import annotations

import argparse
from typing import Any

from .arguments import non_negative_int, output_file, positive_int, say, write_json


def run(args: argparse.Namespace) -> int:
    from ..bench import bench_bundle, format_bench
    from ..bundle import load_bundle
    from ..visualize import load_image

    json_path = output_file(args.json, "--json")
    options: dict[str, Any] = {"threads": args.threads} if args.threads else {}
    image = load_image(args.image) if args.image else None
    bundle = load_bundle(args.bundle, backend=args.backend, **options)
    say(f"benchmarking {args.bundle}: {args.runs} runs after {args.warmup} warm-up, "
         "fp32 matmul peak measured before and after")
    result = bench_bundle(bundle, runs=args.runs, warmup=args.warmup, threads=args.threads, image=image)
    print(format_bench(result))
    if json_path is not None:
        write_json(json_path, result)
    return 0


def add_parser(sub: Any) -> None:
    b = sub.add_parser("bench", help="encoder and per-prompt decoder latency, GFLOPs, floor ratios")
    b.add_argument("bundle")
    b.add_argument("--runs", type=positive_int, default=10)
    b.add_argument("--warmup", type=non_negative_int, default=2)
    b.add_argument("--threads", type=positive_int,
                   help="intra-op threads (and the peak probe's); default: all cores")
    b.add_argument("--image", help="image the per-prompt masks are upscaled to (default: the demo image)")
    b.add_argument("--backend", default="auto")
    b.add_argument("--json", help="write results as JSON (the folder must exist)")
    b.set_defaults(fn=run)
