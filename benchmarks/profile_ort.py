"""Where a bundle's graph spends its time, per operator type (onnxruntime's profiler).

    python benchmarks/profile_ort.py BUNDLE --graph decoder --runs 10 --threads 2

Runs the graph on ``edge_sam_sdk.bench``'s timing feed with ``enable_profiling``, then sums
the kernel times (``*_kernel_time`` events) per operator type and prints the top rows: total
ms per run, share, and nodes per run. This is how the changes listed in ``benchmarks/README.md``
(floor ratios) were found.

``--floor`` adds the bound that onnxruntime's own kernels put on the floor ratio: the matrix
products' kernels (``PRODUCTS``: Gemm, MatMul, Conv, ... which carry the counted FLOPs) take
``products ms``; divided by the floor (the graph's GFLOPs from the manifest / this machine's
fp32 matmul peak, ``edge_sam_sdk.bench.matmul_peak``, the higher of a probe before and one
after) that is the floor ratio the graph would reach if every other operator were free. No
export choice can go below it on this machine.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

from edge_sam_sdk.bench import graph_gflops, latency_feeds, matmul_peak
from edge_sam_sdk.bundle import load_bundle

#: Operator types that compute the counted FLOPs (matrix products and convolutions).
PRODUCTS = frozenset({"Gemm", "MatMul", "FusedMatMul", "FusedGemm", "Conv", "FusedConv",
                      "NchwcConv", "ConvTranspose", "Einsum"})


def profile(bundle_path: str, graph: str, runs: int, threads: int) -> list[tuple[str, float, float, int]]:
    """``[(op_type, ms per run, share, nodes per run)]``, most expensive first."""
    import onnxruntime as ort

    bundle = load_bundle(bundle_path, threads=threads)
    enc, dec = latency_feeds(bundle)
    feed = enc if graph == "encoder" else dec
    path = Path(bundle_path) / bundle.manifest["graphs"][graph]["file"]
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        session.run(None, feed)  # warm-up: profiled too, left out of the sums below
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    warm = min((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    total: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    after_warmup = warm["ts"] + warm["dur"]
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] > after_warmup:
            total[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    n = runs
    grand = sum(total.values()) or 1
    return [(op, us / n / 1e3, us / grand, count[op] // n) for op, us in total.most_common()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--graph", choices=("encoder", "decoder"), default="decoder")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--floor", action="store_true",
                    help="also print the products-only bound on the floor ratio (measures the peak)")
    args = ap.parse_args()
    peaks = [matmul_peak(args.threads)["gflops"]] if args.floor else []
    rows = profile(args.bundle, args.graph, args.runs, args.threads)
    total = sum(r[1] for r in rows)
    print(f"{args.graph}: {total:.1f} ms per run in kernels")
    for op, ms, share, nodes in rows[:args.top]:
        print(f"{op:28s} {ms:9.2f} ms {100 * share:5.1f}%  x{nodes}")
    if args.floor:
        products = sum(ms for op, ms, _, _ in rows if op in PRODUCTS)
        gflops = graph_gflops(load_bundle(args.bundle), args.graph)
        peak = max(p or 0.0 for p in peaks + [matmul_peak(args.threads)["gflops"]])  # before and after
        if not gflops or not peak:
            raise SystemExit("no GFLOPs in the manifest or no peak measured: no floor to compare with")
        floor_ms = gflops / peak * 1e3
        print(f"floor: {gflops:.2f} GFLOPs / {peak:.0f} GFLOP/s = {floor_ms:.1f} ms; "
              f"products {products:.1f} ms ({gflops / products * 1e3:.0f} GFLOP/s), "
              f"everything else {total - products:.1f} ms")
        print(f"kernels / floor = {total / floor_ms:.2f}; products alone / floor = "
              f"{products / floor_ms:.2f} (the floor ratio if every other operator were free)")


if __name__ == "__main__":
    main()
