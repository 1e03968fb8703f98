"""Core ML conversion of every registered variant, for the result table of docs/targets/coreml.md.

    python benchmarks/coreml_convert.py [--precision fp16] [--variants mobile_sam nanosam]

Per variant, in a fresh subprocess (one model's memory never stacks on another's): export a
Core ML bundle with synthetic weights (``edgesam export --target coreml``: torch.export,
lowered-program check, conversion, read-back of the saved packages), and record success or
the one-line error, the wall time, each graph's torch.export/convert seconds, package sizes
and how many compute ops stayed fp32. Writes ``results/coreml_convert.json`` (merged with
earlier runs, so variants can be measured in several sittings), prints a Markdown table and
rewrites it between the ``coreml-table`` markers in ``docs/targets/coreml.md``.
Parity of Core ML itself is not measured here (Core ML runs only on macOS).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from readme_table import write_between_markers

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "coreml_convert.json"
README = HERE.parent / "docs" / "targets" / "coreml.md"


def measure(variant: str, precision: str, threads: int) -> dict[str, Any]:
    import torch

    from edge_sam_sdk.bundle import read_manifest
    from edge_sam_sdk.errors import EdgeSamError
    from edge_sam_sdk.exporters.export import export_bundle

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        try:
            out = export_bundle(variant, "synthetic:0", Path(tmp) / "b", target="coreml", precision=precision)
        except EdgeSamError as exc:
            return {"variant": variant, "ok": False, "error": str(exc),
                    "total_s": round(time.perf_counter() - t0, 1)}
        total = time.perf_counter() - t0
        manifest = read_manifest(out)
        row: dict[str, Any] = {"variant": variant, "ok": True, "total_s": round(total, 1)}
        for name in ("encoder", "decoder"):
            g = manifest["graphs"][name]
            size = sum(p.stat().st_size for p in (out / g["file"]).rglob("*") if p.is_file())
            fp32 = sum(g["coreml"]["op_precisions"]["fp32"].values())
            fp16 = sum(g["coreml"]["op_precisions"]["fp16"].values())
            row[name] = {"export_s": g["coreml"]["export_s"], "check_s": g["coreml"]["check_s"],
                         "convert_s": g["coreml"]["convert_s"], "cpu_s": g["coreml"]["cpu_s"],
                         "mb": round(size / 2**20, 1), "fp32_ops": fp32, "fp16_ops": fp16}
        return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | fp16 conversion | encoder: torch.export / check / convert, wall s (CPU s) "
             "| encoder package | decoder: torch.export / check / convert, wall s (CPU s) | decoder package "
             "| fp32 / fp16 compute ops (encoder; decoder) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: r["variant"]):
        if not r["ok"]:
            lines.append(f"| `{r['variant']}` | failed: {r['error']} | | | | | |")
            continue
        e, d = r["encoder"], r["decoder"]
        lines.append(f"| `{r['variant']}` | converts | {e['export_s']} / {e['check_s']} / {e['convert_s']} "
                     f"({e['cpu_s']}) | {e['mb']} MB | {d['export_s']} / {d['check_s']} / {d['convert_s']} "
                     f"({d['cpu_s']}) | {d['mb']} MB "
                     f"| {e['fp32_ops']} / {e['fp16_ops']}; {d['fp32_ops']} / {d['fp16_ops']} |")
    return "\n".join(lines)


def main() -> int:
    from edge_sam_sdk.registry import list_variants

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--variants", nargs="*", default=list_variants())
    p.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.precision, args.threads)))
        return 0
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    rows = {r["variant"]: r for r in old.get("rows", []) if r["variant"] in list_variants()}
    for v in args.variants:
        print(f"converting {v} ...", file=sys.stderr, flush=True)
        res = subprocess.run([sys.executable, __file__, "--child", v, "--precision", args.precision,
                              "--threads", str(args.threads)], capture_output=True, text=True)
        try:
            rows[v] = json.loads(res.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            rows[v] = {"variant": v, "ok": False, "error": f"process exited {res.returncode}: {tail}"}
        print(json.dumps(rows[v]), file=sys.stderr, flush=True)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps({
            "precision": args.precision, "threads": args.threads, "machine": platform.platform(),
            "cpus": __import__("os").cpu_count(), "rows": sorted(rows.values(), key=lambda r: r["variant"])},
            indent=1) + "\n")
    text = table(list(rows.values()))
    print(text)
    write_between_markers(README, "coreml-table", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
