"""Export a variant to a bundle folder, atomically, with parity figures in the manifest.

The bundle is written into a temporary sibling folder and renamed into place only when
every graph has been exported, checked and measured, so a failure leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk import __version__
from edge_sam_sdk.bundle import FORMAT_VERSION, Bundle, sha256_file, sha256_tree, write_manifest
from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.graphs import GraphSpec, graph_specs, parity, parity_ok, sample_feed
from edge_sam_sdk.registry import VariantSpec, get_variant

from .checkpoint import load_model, parse_synthetic, split_checkpoint

Progress = Callable[[str], None]
TARGET_FILES = {"onnx": ".onnx", "coreml": ".mlpackage"}


def graph_modules(model: Any) -> dict[str, Any]:
    """``{"encoder": module, "decoder": module}``: the model family's two export graphs."""
    return dict(model.export_graphs())


def measure_parity(backend: Any, module: Any, graph: GraphSpec,
                   feed: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run ``backend`` and the torch ``module`` on ``feed``; figures per output and overall ok."""
    from edge_sam_sdk.runtimes.torch_backend import TorchBackend

    ref = TorchBackend(module, graph.input_names, graph.output_names).run(feed)
    got = backend.run(feed)
    figures = {n: parity(ref[n], got[n]) for n in graph.output_names}
    return {"outputs": figures, "ok": all(parity_ok(f, graph) for f in figures.values()),
            "bound": {"max_abs_rel": graph.max_abs, "rel_l2": graph.rel_l2}}


def checkpoint_facts(checkpoint: str) -> dict[str, Any]:
    """``source`` (file names) and ``sha256`` (one digest per file, ``,``-joined) of a checkpoint."""
    if parse_synthetic(checkpoint) is not None:
        return {"source": checkpoint, "sha256": None}
    paths = split_checkpoint(checkpoint)
    return {"source": ",".join(Path(p).name for p in paths),
            "sha256": ",".join(sha256_file(p) for p in paths)}


def base_manifest(spec: VariantSpec, target: str, precision: str) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "sdk_version": __version__,
        "variant": spec.name,
        "family": spec.family,
        "decoder_kind": spec.decoder_kind,
        "target": target,
        "precision": precision,
        "processing": spec.processing.to_dict(),
        "license": spec.license,
        "created_unix": int(time.time()),
    }


def export_bundle(variant: str, checkpoint: str, out: str | Path, target: str = "onnx",
                  precision: str = "fp32", overwrite: bool = False, simplify: bool = True,
                  progress: Progress | None = None,
                  target_options: Mapping[str, Any] | None = None) -> Path:
    """Export ``variant`` with ``checkpoint`` (path or ``synthetic:SEED``) to bundle ``out``.

    ``target_options`` are the target's own options (``coreml``: see
    :class:`.coreml_export.CoreMLOptions`, e.g. ``{"palettize": 6}``).
    """
    say = progress or (lambda _msg: None)
    spec = get_variant(variant)
    if target not in TARGET_FILES:
        raise EdgeSamError(f"unknown target {target!r}; supported: {sorted(TARGET_FILES)}")
    if target not in spec.targets:
        raise EdgeSamError(f"variant {variant} does not support target {target!r} "
                           f"(supported: {list(spec.targets)})")
    coreml = None
    if target == "coreml":  # options checked and coremltools imported before any work
        from .coreml_export import coreml_options, require_coremltools

        coreml = coreml_options(precision, target_options)
        require_coremltools()
    elif target_options:
        raise EdgeSamError(f"options {sorted(target_options)} do not apply to target {target!r}")
    elif precision != "fp32":
        raise EdgeSamError(f"precision {precision!r} is not supported for {target} yet (fp32 only)")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise EdgeSamError(f"{out} exists and is not empty; pass --overwrite to replace it")
    say(f"[1/4] building {variant} and loading {checkpoint}")
    model = load_model(spec, checkpoint)
    specs, modules = graph_specs(spec), graph_modules(model)
    manifest = base_manifest(spec, target, precision)
    manifest["checkpoint"] = checkpoint_facts(checkpoint)
    digest = manifest["checkpoint"]["sha256"]
    if digest is not None:
        known = set(spec.checkpoint.sha256.values())
        official = all(d in known for d in digest.split(",")) if known else None
        manifest["checkpoint"]["official"] = official
        if official:
            say("checkpoint sha256 matches the official file")
        elif official is None:
            say(f"no official sha256 is recorded for {variant}; exporting the checkpoint as given")
        else:
            say("checkpoint sha256 differs from the official file(s) we know (fine-tuned weights?); "
                "exporting it as given")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest["graphs"], manifest["export_parity"] = {}, {}
        for step, name in enumerate(("encoder", "decoder"), start=2):
            graph, module = specs[name], modules[name]
            file = name + TARGET_FILES[target]
            say(f"[{step}/4] exporting {name} graph to {target} ({file})")
            feed = sample_feed(graph)
            if coreml is not None:
                from .coreml_export import export_coreml

                checks = [feed] + ([sample_feed(graph, seed=1, batch=1, points=min(5, coreml.max_points))]
                                   if graph.dynamic_axes() else [])  # other B and N
                facts = export_coreml(module, graph, feed, tmp / file, spec, coreml,
                                      manifest["checkpoint"]["source"], check_feeds=checks)
            else:
                facts = _export_target(target, module, graph, feed, tmp / file, simplify)
            entry = graph.to_dict() | facts
            entry.update(file=file, precision=precision, sha256=sha256_tree(tmp / file))
            entry["data_files"] = [{"file": f, "sha256": sha256_file(tmp / f)}
                                   for f in facts.get("data_files", [])]
            manifest["graphs"][name] = entry
        if coreml is not None:
            from .coreml_export import bundle_parity

            say("[4/4] Core ML parity (measured on macOS only); packages were checked against the specs")
            manifest["export_parity"] = bundle_parity(tmp, manifest, specs, modules, coreml)
        else:
            say("[4/4] checking parity of the exported graphs against torch")
            from edge_sam_sdk.runtimes import backend_class, backend_for_target

            cls = backend_class(backend_for_target(target))
            for name in ("encoder", "decoder"):
                backend = cls(tmp / manifest["graphs"][name]["file"])
                figures = measure_parity(backend, modules[name], specs[name], sample_feed(specs[name]))
                manifest["export_parity"][name] = figures
                if not figures["ok"]:
                    raise EdgeSamError(f"{name} graph fails parity with torch: {figures['outputs']}")
        write_manifest(tmp, manifest)
        tmp.chmod(0o755)  # mkdtemp creates 0700; onnx writes external data 0600
        for f in tmp.rglob("*"):  # .mlpackage graphs are folders
            f.chmod(0o755 if f.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"bundle written to {out}")
    return out


def _export_target(target: str, module: Any, graph: GraphSpec, feed: dict[str, np.ndarray],
                   path: Path, simplify: bool) -> dict[str, Any]:
    if target == "onnx":
        from .onnx_export import export_onnx

        return export_onnx(module, graph, feed, path, simplify=simplify)
    raise EdgeSamError(f"unknown target {target!r}")


def torch_bundle(variant: str, checkpoint: str, threads: int | None = None) -> Bundle:
    """An in-memory bundle running our torch graphs (the reference backend)."""
    from edge_sam_sdk.runtimes.torch_backend import TorchBackend

    spec = get_variant(variant)
    model = load_model(spec, checkpoint)
    specs, modules = graph_specs(spec), graph_modules(model)
    manifest = base_manifest(spec, "torch", "fp32")
    manifest["graphs"] = {n: specs[n].to_dict() for n in specs}
    manifest["checkpoint"] = checkpoint_facts(checkpoint)
    enc, dec = (TorchBackend(modules[n], specs[n].input_names, specs[n].output_names, threads)
                for n in ("encoder", "decoder"))
    return Bundle(manifest, enc, dec, None)
