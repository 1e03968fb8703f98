"""Loading a video bundle (``manifest.json`` with ``"kind": "video"``, see :mod:`.export`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..bundle import bundle_file, sha256_tree
from ..errors import BundleError
from .engine import GRAPHS, VideoConfig, VideoEngine


def read_video_manifest(path: str | Path) -> dict[str, Any]:
    folder = Path(path)
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise BundleError(f"{folder} is not a video bundle: manifest.json is missing")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath} is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "video":
        raise BundleError(f"{folder} is not a video bundle (manifest kind {manifest.get('kind')!r}); "
                          "export one with: edgesam export-video --checkpoint CKPT --out DIR")
    if manifest.get("video_format_version") != 1:
        raise BundleError(f"{mpath}: unknown video_format_version {manifest.get('video_format_version')!r}")
    missing = [g for g in GRAPHS if g not in manifest.get("graphs", {})]
    if missing:
        raise BundleError(f"{mpath}: graphs missing: {missing}")
    return manifest


def load_video_engine(path: str | Path, backend: str | None = None, threads: int | None = None,
                      verify: bool = True) -> VideoEngine:
    """A :class:`VideoEngine` on the graphs of video bundle ``path`` (checksums checked with
    ``verify``); ``backend``: the runtime (default: the one of the bundle's target)."""
    from edge_sam_sdk.runtimes import backend_class, backend_for_target

    manifest = read_video_manifest(path)
    if backend is None:
        backend = str(manifest.get("runtime") or backend_for_target(str(manifest.get("target", "onnx"))))
    cls = backend_class(backend)
    graphs = {}
    for name in GRAPHS:
        entry = manifest["graphs"][name]
        rel = str(entry["file"])
        file = bundle_file(path, rel, f"{name} graph", folder_ok=rel.endswith(".mlpackage"))
        if verify and sha256_tree(file) != entry.get("sha256"):
            raise BundleError(f"{file} does not match its sha256 in the manifest; the bundle is corrupt")
        graphs[name] = cls(file, threads=threads)
    return VideoEngine(graphs, VideoConfig.from_dict(manifest["video"]))
