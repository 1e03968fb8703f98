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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BundleError
from .processing import ProcessingSpec

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_REQUIRED = ("format_version", "variant", "decoder_kind", "target", "processing", "graphs")


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
    """Read and validate ``path/manifest.json`` (structure and format version only)."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"bundle folder not found: {folder}")
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{folder} is not a bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath} is corrupt: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{mpath} is corrupt: expected a JSON object")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"{mpath} is corrupt: missing keys {missing}")
    version = manifest["format_version"]
    if version != FORMAT_VERSION:
        raise BundleError(f"{mpath}: unknown bundle format version {version!r} "
                          f"(this SDK reads version {FORMAT_VERSION}); re-export the bundle")
    for name in ("encoder", "decoder"):
        g = manifest["graphs"].get(name)
        if not isinstance(g, dict) or "file" not in g or "sha256" not in g:
            raise BundleError(f"{mpath} is corrupt: graph {name!r} has no file/sha256 entry")
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Check that every graph file (and its external data) exists with the recorded sha256."""
    for name, g in manifest["graphs"].items():
        entries = [(g["file"], g["sha256"])] + [(d["file"], d["sha256"]) for d in g.get("data_files", [])]
        for file, digest in entries:
            p = folder / file
            if not p.exists():
                raise BundleError(f"bundle {folder}: {name} file {file!r} is missing")
            actual = sha256_tree(p)
            if actual != digest:
                raise BundleError(f"bundle {folder}: {file!r} has sha256 {actual[:12]}..., the manifest "
                                  f"records {digest[:12]}...; the file is corrupt or was replaced")


def sha256_tree(path: Path) -> str:
    """sha256 of a file, or of a folder (e.g. ``.mlpackage``) over its sorted files."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(p.relative_to(path).as_posix().encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def load_bundle(path: str | Path, backend: str = "auto", verify: bool = True, **options: Any) -> Bundle:
    """Load a bundle folder with a runtime backend.

    Args:
        path: bundle folder (holding ``manifest.json``).
        backend: ``"auto"`` (the target's default backend) or a backend name.
        verify: check every file's sha256 against the manifest.
        **options: passed to the backend (e.g. ``threads=2``, ``providers=[...]``).
    """
    from edge_sam_sdk.runtimes import backend_class, backend_for_target

    folder = Path(path)
    manifest = read_manifest(folder)
    if verify:
        verify_files(folder, manifest)
    name = backend_for_target(manifest["target"]) if backend == "auto" else backend
    cls = backend_class(name)
    graphs = {g: cls(folder / manifest["graphs"][g]["file"], **options) for g in ("encoder", "decoder")}
    for g, b in graphs.items():
        expected = [t["name"] for t in manifest["graphs"][g]["inputs"]]
        if list(b.inputs) != expected:
            raise BundleError(f"bundle {folder}: {g} graph inputs {b.inputs} differ from the "
                              f"manifest's {expected}")
    return Bundle(manifest, graphs["encoder"], graphs["decoder"], folder)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
