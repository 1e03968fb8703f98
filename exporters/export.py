"""Export a variant to a bundle folder, atomically, with parity figures in the manifest.

One pipeline for every target: build the model, let the target (:mod:`.targets`) write
each graph, check parity, and finish (reduced precision, engines, reports). The bundle is
written into a temporary sibling folder and renamed into place only when every graph has
been exported, checked and measured, so a failure leaves nothing behind.

Ctrl-C (SIGINT) always stops an export and removes the temporary folder. Two things used to
defeat it: a process started with SIGINT ignored (POSIX shells start background jobs of a
non-interactive shell that way, and Python then installs no handler, so ``KeyboardInterrupt``
is never raised), and libraries that swallow exceptions raised inside their callbacks.
:func:`_interruptible` installs a handler for the export's duration that records the signal
and raises ``KeyboardInterrupt``; the export checks the record between steps and before it
renames the folder into place.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edge_sam_sdk import __version__
from edge_sam_sdk.bundle import FORMAT_VERSION, Bundle, sha256_file, sha256_tree, write_manifest
from edge_sam_sdk.checkpoints import resolve_checkpoint
from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.graphs import graph_specs
from edge_sam_sdk.registry import VariantSpec, get_variant

from .checkpoint import load_model, parse_synthetic, split_checkpoint
from .flops import count_gflops

Progress = Callable[[str], None]


def graph_modules(model: Any) -> dict[str, Any]:
    """``{"encoder": module, "decoder": module}``: the model family's two export graphs."""
    return dict(model.export_graphs())


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
                  precision: str = "fp32", overwrite: bool = False, progress: Progress | None = None,
                  **options: Any) -> Path:
    """Export ``variant`` with ``checkpoint`` (path or ``synthetic:SEED``) to bundle ``out``.

    ``target``: a key of :data:`.targets.TARGETS` (onnx, tensorrt, coreml, tflite).
    ``options`` are the target's own (e.g. onnx: ``simplify``, ``tensorrt_ready``,
    ``calibration_images``, ``bimodal_fix``; see each target class); an option the target
    does not take is an error. Target, precision, options and the packages the target needs
    are checked before any work.
    """
    from .targets import make_target

    say = progress or (lambda _msg: None)
    spec = get_variant(variant)
    checkpoint = resolve_checkpoint(checkpoint, variant)  # official / a variant name -> cached file(s)
    tgt = make_target(target, spec, precision, options, say)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgeSamError(f"{out} exists and is a file, not a bundle folder; choose another --out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise EdgeSamError(f"{out} exists and is not empty; pass --overwrite to replace it")
    steps = tgt.steps
    say(f"[1/{steps}] building {variant} and loading {checkpoint}")
    model = load_model(spec, checkpoint)
    modules = graph_modules(model)
    manifest = base_manifest(spec, target, precision)
    manifest["checkpoint"] = checkpoint_facts(checkpoint)
    _check_official(spec, manifest["checkpoint"], say)
    specs = tgt.prepare(modules, graph_specs(spec), manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _interruptible() as interrupted:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            manifest["graphs"] = {}
            for step, name in enumerate(("encoder", "decoder"), start=2):
                file = name + tgt.suffix
                say(f"[{step}/{steps}] exporting {name} graph to {target} ({file})")
                facts = tgt.export_graph(name, modules[name], specs[name], tmp / file)
                interrupted.check()
                entry = specs[name].to_dict() | facts
                entry["gflops"] = count_gflops(modules[name], specs[name])
                entry.update(file=file, precision=precision, sha256=sha256_tree(tmp / file))
                entry["data_files"] = [{"file": f, "sha256": sha256_file(tmp / f)}
                                       for f in facts.get("data_files", [])]
                manifest["graphs"][name] = entry
            tgt.after_export(tmp, manifest)
            say(f"[4/{steps}] checking parity of the exported graphs against torch")
            manifest["export_parity"] = tgt.parity(tmp, manifest, modules, specs)
            interrupted.check()
            tgt.finish(tmp, manifest, modules, specs)
            write_manifest(tmp, manifest)
            tmp.chmod(0o755)  # mkdtemp creates 0700; onnx writes external data 0600
            for f in tmp.rglob("*"):  # .mlpackage graphs are folders
                f.chmod(0o755 if f.is_dir() else 0o644)
            interrupted.check()
            _move_into_place(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    say(f"bundle written to {out}")
    return out


class _Interrupts:
    """Whether SIGINT arrived during the export (``check`` raises ``KeyboardInterrupt`` then)."""

    def __init__(self) -> None:
        self.seen = False

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt


@contextlib.contextmanager
def _interruptible() -> Iterator[_Interrupts]:
    """SIGINT raises ``KeyboardInterrupt`` during the block, even when the process started
    with SIGINT ignored, and is remembered in case a library swallows the exception. Off the
    main thread (where Python cannot set handlers) the block runs as is."""
    state = _Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(_signum: int, _frame: object) -> None:
        state.seen = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``; an existing ``out`` (``--overwrite``) is
    first renamed aside and removed only after the new one is in place."""
    if not out.exists():
        tmp.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    old.rmdir()
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _check_official(spec: VariantSpec, facts: dict[str, Any], say: Progress) -> None:
    digest = facts["sha256"]
    if digest is None:
        return
    known = set(spec.checkpoint.sha256.values())
    official = all(d in known for d in digest.split(",")) if known else None
    facts["official"] = official
    if official:
        say("checkpoint sha256 matches the official file")
    elif official is None:
        say(f"no official sha256 is recorded for {spec.name}; exporting the checkpoint as given")
    else:
        say("checkpoint sha256 differs from the official file(s) we know (fine-tuned weights?); "
            "exporting it as given")


def torch_bundle(variant: str, checkpoint: str, threads: int | None = None) -> Bundle:
    """An in-memory bundle running our torch graphs (the reference backend)."""
    from edge_sam_sdk.runtimes.torch_backend import TorchBackend

    spec = get_variant(variant)
    checkpoint = resolve_checkpoint(checkpoint, variant)
    model = load_model(spec, checkpoint)
    specs, modules = graph_specs(spec), graph_modules(model)
    manifest = base_manifest(spec, "torch", "fp32")
    manifest["graphs"] = {n: specs[n].to_dict() for n in specs}
    manifest["checkpoint"] = checkpoint_facts(checkpoint)
    enc, dec = (TorchBackend(modules[n], specs[n].input_names, specs[n].output_names, threads)
                for n in ("encoder", "decoder"))
    return Bundle(manifest, enc, dec, None)
