"""Peak memory of ``SamPredictor.set_image`` on a large image (10000 x 10000 by default).

    python benchmarks/memory.py                          # stub encoders, one per resize rule
    python benchmarks/memory.py --bundle bundles/mobile_sam --side 10000

Each case runs in its own subprocess (so one case's allocations never count in another's):
it builds the ``side x side x 3`` uint8 image (a gradient, filled in place), loads the
bundle (or, without ``--bundle``, a stub encoder returning zeros of the variant's declared
outputs: the SDK's own pre-processing alone), then runs ``set_image`` once under
``tracemalloc``. Reported per case, in MiB: ``image`` (the input array itself),
``numpy_peak`` (the most numpy memory ``set_image`` held at once, from ``tracemalloc``; numpy
reports its buffers there), ``rss_before`` and ``rss_peak`` (the process's resident memory
before the call and its peak over the whole run, ``resource.getrusage``: image, Python,
onnxruntime and the model included). The bar is ``rss_peak`` under 1.5 GB (1430 MiB) with a
real bundle; the numbers are recorded in ``benchmarks/README.md``, not asserted in a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

STUB_VARIANTS = ("mobile_sam", "nanosam", "efficient_sam_vitt", "sam2_1_hiera_tiny")
MIB = 1 << 20


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class _StubEncoder:
    name = "stub"
    inputs = ["image"]

    def __init__(self, outputs: dict[str, tuple[int, ...]]):
        self.shapes = outputs
        self.outputs = list(outputs)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: np.zeros(s, np.float32) for n, s in self.shapes.items()}


def _stub_bundle(variant: str) -> Any:
    from edge_sam_sdk.bundle import Bundle
    from edge_sam_sdk.graphs import graph_specs
    from edge_sam_sdk.registry import get_variant

    spec = get_variant(variant)
    graphs = {n: g.to_dict() for n, g in graph_specs(spec).items()}
    manifest = {"variant": variant, "decoder_kind": spec.decoder_kind, "target": "torch",
                "processing": spec.processing.to_dict(), "graphs": graphs}
    encoder = _StubEncoder({t["name"]: tuple(t["shape"]) for t in graphs["encoder"]["outputs"]})
    return Bundle(manifest, encoder, None, None)


def child(side: int, bundle: str | None, variant: str) -> dict[str, Any]:
    """One measurement (runs in the subprocess)."""
    import edge_sam_sdk  # noqa: F401  (registers the variants)
    from edge_sam_sdk.bundle import load_bundle
    from edge_sam_sdk.predictor import SamPredictor

    b = load_bundle(bundle) if bundle else _stub_bundle(variant)
    predictor = SamPredictor(b)
    image = np.empty((side, side, 3), np.uint8)
    image[..., 0] = (np.arange(side) % 256).astype(np.uint8)[None, :]
    image[..., 1] = (np.arange(side) % 251).astype(np.uint8)[:, None]
    image[..., 2] = 128
    rss_before = _rss_mib()
    tracemalloc.start()
    t0 = time.perf_counter()
    predictor.set_image(image)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"case": bundle or f"stub {variant} ({b.processing.interpolation})", "side": side,
            "image": round(image.nbytes / MIB), "numpy_peak": round(peak / MIB),
            "rss_before": round(rss_before), "rss_peak": round(_rss_mib()), "seconds": round(seconds, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=10000)
    p.add_argument("--bundle", action="append", help="bundle folder (repeatable); default: stub encoders")
    p.add_argument("--child", nargs=2, metavar=("BUNDLE_OR_-", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        bundle = None if args.child[0] == "-" else args.child[0]
        print(json.dumps(child(args.side, bundle, args.child[1])))
        return
    cases = [(b, "-") for b in args.bundle] if args.bundle else [("-", v) for v in STUB_VARIANTS]
    print("| case | image MiB | numpy peak in set_image MiB | RSS before MiB | RSS peak MiB | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for bundle, variant in cases:
        out = subprocess.run([sys.executable, __file__, "--side", str(args.side), "--child", bundle, variant],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        cells = [f"{r['case']} {r['side']}x{r['side']}"] + [str(r[k]) for k in
                                                            ("image", "numpy_peak", "rss_before", "rss_peak",
                                                             "seconds")]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
