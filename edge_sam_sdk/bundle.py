"""The bundle: an encoder graph, a decoder graph and ``manifest.json`` in one folder.

The manifest fully describes how to use the graphs, so apps need nothing else::

    {
      "format_version": 1, "sdk_version": "0.1.0",
      "variant": "mobile_sam", "family": "mobile_sam", "decoder_kind": "sam",
      "target": "onnx", "precision": "fp32",
      "processing": {every field of ProcessingSpec: resize rule, interpolation, mean/std,
                     prompt frame and padding rules, mask post-processing, ...},
      "graphs": {"encoder": {"file", "sha256", "inputs", "outputs", "data_files", ...},
                 "decoder": {..., "extra": {"mask_selection": {...},
                                            "from_encoder": [encoder outputs it takes]}}},
      "checkpoint": {"source", "sha256"},
      "export_parity": {"encoder": {...}, "decoder": {...}},
      "license": "..."
    }

:func:`read_manifest` validates it against :mod:`.manifest_schema` (the normative schema);
:func:`load_bundle` then resolves every file it names inside the bundle folder
(:func:`bundle_file`: no path, symlink or ``.mlpackage`` entry may lead outside) before
anything is opened, checks the sha256s and loads each graph with the target's backend.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .errors import BundleError
from .manifest_schema import FORMAT_VERSION, validate_manifest
from .processing import ProcessingSpec

MANIFEST = "manifest.json"
#: A manifest larger than this is refused before it is read.
MAX_MANIFEST_BYTES = 16 << 20


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    """A loaded bundle: its manifest and one runtime backend per graph."""

    manifest: dict[str, Any]
    encoder: Any
    decoder: Any
    path: Path | None = None

    @property
    def variant(self) -> str:
        return str(self.manifest["variant"])

    @property
    def processing(self) -> ProcessingSpec:
        return ProcessingSpec.from_dict(self.manifest["processing"])

    @property
    def decoder_kind(self) -> str:
        return str(self.manifest["decoder_kind"])

    def graph(self, name: str) -> dict[str, Any]:
        return dict(self.manifest["graphs"][name])


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read ``path/manifest.json`` and validate it against :mod:`.manifest_schema`.

    Returns the manifest as parsed (a dict). ``BundleError`` (one line naming the key) when
    the folder is no bundle, the manifest is not JSON, or it breaks the schema.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"bundle folder not found: {folder}")
    mpath = folder / MANIFEST
    if not mpath.exists() and not mpath.is_symlink():
        raise BundleError(f"{folder} is not a bundle: {MANIFEST} is missing")
    real = _inside(folder, MANIFEST, "manifest")
    if not real.is_file():
        raise BundleError(f"bundle {folder}: {MANIFEST} is not a regular file")
    if real.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{mpath} is corrupt: over {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        manifest = json.loads(real.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath} is corrupt: {exc}") from None
    except RecursionError:
        raise BundleError(f"{mpath} is corrupt: nested too deeply") from None
    validate_manifest(manifest, str(mpath))
    return dict(manifest)


def _inside(folder: Path, rel: str, what: str) -> Path:
    """``folder/rel`` resolved (symlinks followed); ``BundleError`` unless it lies inside ``folder``."""
    root = folder.resolve()
    try:
        real = (root / rel).resolve(strict=True)
    except FileNotFoundError:
        raise BundleError(f"bundle {folder}: {what} file {rel!r} is missing") from None
    except (OSError, RuntimeError):  # a symlink loop, a component that is a file
        raise BundleError(f"bundle {folder}: {what} file {rel!r} cannot be resolved") from None
    if real == root or not real.is_relative_to(root):
        raise BundleError(f"bundle {folder}: {what} file {rel!r} leads outside the bundle folder "
                          "(a symlink?); refused")
    return real


def bundle_file(folder: str | Path, rel: str, what: str, folder_ok: bool = False) -> Path:
    """The file (or, with ``folder_ok``, the folder such as an ``.mlpackage``) ``rel`` of a
    bundle, resolved and confined to the bundle folder before anything is opened.

    ``rel`` must be a plain relative path (the schema checks the syntax); the resolved path
    must lie inside ``folder``; it must be a regular file, or a folder whose every entry is
    a regular file or folder inside the bundle. ``BundleError`` otherwise; messages name
    only the manifest's entry, never what lies outside.
    """
    folder = Path(folder)
    if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in rel.split("/") or "\\" in rel:
        raise BundleError(f"bundle {folder}: {what} file {rel!r} is not a relative path inside the bundle")
    real = _inside(folder, rel, what)
    if real.is_dir():
        if not folder_ok:
            raise BundleError(f"bundle {folder}: {what} file {rel!r} is a folder, expected a file")
        for entry in _tree(real):
            _inside(folder, entry.relative_to(folder.resolve()).as_posix(), what)
            if not (entry.is_file() or entry.is_dir()):
                raise BundleError(f"bundle {folder}: {what} {rel!r} holds {entry.name!r}, not a regular file")
    elif folder_ok:
        raise BundleError(f"bundle {folder}: {what} {rel!r} must be a folder (.mlpackage)")
    elif not real.is_file():
        raise BundleError(f"bundle {folder}: {what} file {rel!r} is not a regular file")
    return real


def _tree(path: Path) -> list[Path]:
    """Every entry under folder ``path`` (symlinks listed, not followed)."""
    out: list[Path] = []
    for top, dirs, files in os.walk(path, followlinks=False):
        out.extend(Path(top) / n for n in dirs + files)
    return out


def graph_files(manifest: dict[str, Any]) -> list[tuple[str, str, str | None, bool]]:
    """``(graph, relative file, sha256, is a folder)`` of every file the manifest's graphs name:
    each graph file (a folder for Core ML's ``.mlpackage``), its ``data_files``, and a
    TensorRT graph's ``onnx_file``."""
    folders = manifest.get("target") == "coreml"
    out: list[tuple[str, str, str | None, bool]] = []
    for name, g in manifest["graphs"].items():
        out.append((name, g["file"], g["sha256"], folders))
        out.extend((name, d["file"], d["sha256"], False) for d in g.get("data_files", []))
        if g.get("onnx_file") and g["onnx_file"] not in [d["file"] for d in g.get("data_files", [])]:
            out.append((name, g["onnx_file"], None, False))
    return out


def check_files(folder: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """Resolve and confine every file the manifest names; ``{graph: its graph file}``."""
    files: dict[str, Path] = {}
    for name, rel, _digest, is_folder in graph_files(manifest):
        real = bundle_file(folder, rel, name, folder_ok=is_folder)
        files.setdefault(name, real)
    return files


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Check that every graph file (and its external data) lies inside the bundle and has the
    recorded sha256."""
    check_files(folder, manifest)
    for name, rel, digest, is_folder in graph_files(manifest):
        if digest is None:
            continue
        actual = sha256_tree(bundle_file(folder, rel, name, folder_ok=is_folder))
        if actual != digest:
            raise BundleError(f"bundle {folder}: {rel!r} has sha256 {actual[:12]}..., the manifest "
                              f"records {digest[:12]}...; the file is corrupt or was replaced")


def sha256_tree(path: Path) -> str:
    """sha256 of a file, or of a folder (e.g. ``.mlpackage``) over its sorted files (sorted by
    relative path components; symlinks are not followed out of the folder)."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    files = [q for q in _tree(path) if q.is_file()]
    for p in sorted(files, key=lambda q: q.relative_to(path).parts):
        h.update(p.relative_to(path).as_posix().encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def load_bundle(path: str | Path, backend: str = "auto", verify: bool = True, **options: Any) -> Bundle:
    """Load a bundle folder with a runtime backend.

    The manifest is validated (:mod:`.manifest_schema`) and every file it names is resolved
    and confined to the folder before anything is opened; each graph must load, take the
    manifest's inputs in order and return its outputs (a TFLite graph: hold the signatures
    the manifest names). Every failure is a one-line ``BundleError``.

    Args:
        path: bundle folder (holding ``manifest.json``).
        backend: ``"auto"`` (the target's default backend) or a backend name that runs the
            bundle's target.
        verify: check every file's sha256 against the manifest.
        **options: passed to the backend (e.g. ``threads=2``, ``providers=[...]``).
    """
    from edge_sam_sdk.runtimes import BACKENDS, TARGET_BACKENDS, backend_class

    folder = Path(path)
    manifest = read_manifest(folder)
    name = check_backend(manifest["target"], backend, BACKENDS, TARGET_BACKENDS)
    check_files(folder, manifest)
    if verify:
        verify_files(folder, manifest)
    cls = backend_class(name)
    graphs = {g: cls(folder / manifest["graphs"][g]["file"], **options) for g in ("encoder", "decoder")}
    for g, b in graphs.items():
        entry = manifest["graphs"][g]
        expected = [t["name"] for t in entry["inputs"]]
        if list(b.inputs) != expected:
            raise BundleError(f"bundle {folder}: {g} graph inputs {b.inputs} differ from the "
                              f"manifest's {expected}")
        missing = [t["name"] for t in entry["outputs"] if t["name"] not in b.outputs]
        if missing:
            raise BundleError(f"bundle {folder}: {g} graph lacks the outputs {missing} the manifest lists")
        signatures = (entry.get("extra") or {}).get("tflite", {}).get("signatures")
        held = [s.key for s in getattr(b, "signatures", [])]
        if signatures and hasattr(b, "signatures") and not set(signatures) <= set(held):
            lacking = sorted(set(signatures) - set(held))
            raise BundleError(f"bundle {folder}: {g} graph lacks the signatures {lacking[:4]} the manifest "
                              f"names (it holds {held[:4]}{'...' if len(held) > 4 else ''})")
    return Bundle(manifest, graphs["encoder"], graphs["decoder"], folder)


def check_backend(target: str, backend: str, backends: dict[str, Any], defaults: dict[str, str]) -> str:
    """The backend that runs ``target`` bundles: ``backend`` itself, or the default for ``"auto"``;
    ``BundleError`` when it runs another target (or ``target`` is the in-memory torch one)."""
    if target == "torch":
        raise BundleError("a 'torch' manifest describes an in-memory reference bundle; it cannot be "
                          "loaded from a folder")
    default = defaults[target]
    if backend == "auto":
        return default
    if backend not in backends:
        raise BundleError(f"unknown backend {backend!r}; a {target} bundle runs with {default!r}")
    if backends[backend].target != target:
        raise BundleError(f"backend {backend!r} runs {backends[backend].target} graphs, this bundle's target "
                          f"is {target}: use backend {default!r} (or auto)")
    return backend


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``folder/manifest.json`` atomically (a temporary file renamed into place)."""
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


__all__ = ["FORMAT_VERSION", "MANIFEST", "Bundle", "bundle_file", "check_files", "load_bundle",
           "read_manifest", "sha256_file", "sha256_tree", "verify_files", "write_manifest"]
