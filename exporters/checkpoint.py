"""Loading official checkpoints (or synthetic weights) into our models, strictly.

A checkpoint argument is a path (NanoSAM: paths joined with ``,``), ``synthetic:SEED``, or
an official reference (``official``, ``official:VARIANT``, a variant name) that
:func:`edge_sam_sdk.checkpoints.resolve_checkpoint` turns into cached files, fetching them.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_sam_sdk.checkpoints import resolve_checkpoint
from edge_sam_sdk.errors import CheckpointError
from edge_sam_sdk.registry import VariantSpec
from edge_sam_sdk.testing import synthetic_state_dict

_SYNTHETIC = re.compile(r"^synthetic:(\d+)$")


def parse_synthetic(source: str) -> int | None:
    """``"synthetic:SEED"`` -> SEED, anything else -> None; a seed that is not a
    non-negative integer raises :class:`CheckpointError`."""
    text = source.strip()
    if not text.startswith("synthetic:"):
        return None
    m = _SYNTHETIC.match(text)
    if not m:
        raise CheckpointError(f"synthetic weights take an integer seed, synthetic:SEED such as synthetic:0; "
                              f"got {source!r}")
    return int(m.group(1))


def split_checkpoint(checkpoint: str, variant: str | None = None) -> list[str]:
    """``"a.pth,b.pt"`` -> ``["a.pth", "b.pt"]`` (variants assembled from several files),
    official references resolved to cached files first (fetched when missing)."""
    resolved = resolve_checkpoint(str(checkpoint), variant)
    if Path(resolved).is_file():  # a file whose name holds a comma
        return [resolved]
    return [p.strip() for p in resolved.split(",") if p.strip()]


def _unreadable(path: Path, exc: BaseException, spec: VariantSpec | None) -> CheckpointError:
    """One line saying why ``torch.load`` failed: truncated, not a checkpoint, pickled code."""
    size = path.stat().st_size
    official = spec.checkpoint.size.get(path.name) if spec is not None else None
    sizes = f"{size} bytes" + (f", the official {path.name} has {official}" if official else "")
    with open(path, "rb") as f:
        head = f.read(8)
    text = str(exc).strip()
    if size == 0:
        return CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    if "zip archive" in text or (head.startswith(b"PK") and not zipfile.is_zipfile(path)):
        return CheckpointError(f"checkpoint {path} is truncated or corrupt ({sizes}): not a complete "
                               "torch zip archive; download it again")
    if not head.startswith((b"\x80", b"PK")):
        return CheckpointError(f"{path} is not a torch checkpoint (it starts with {head!r}; {sizes}), "
                               "perhaps an error page saved by a failed download")
    if isinstance(exc, pickle.UnpicklingError) and "weights only" in text.lower():
        return CheckpointError(f"cannot read {path} as a weights-only torch checkpoint: it needs pickled "
                               "code, which is refused for safety")
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    return CheckpointError(f"cannot read {path} as a torch checkpoint ({sizes}): {first}")


def _load_file(path: Path, wrapper: str | None, optional: bool = False,
               spec: VariantSpec | None = None) -> Mapping[str, Any]:
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth"))
        hint = f"; pass a file in it, e.g. {path / inside[0]}" if inside else ""
        raise CheckpointError(f"checkpoint {path} is a folder, not a file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, truncated or corrupt file, not a torch file
        raise _unreadable(path, exc, spec) from None
    if wrapper is not None and not (optional and isinstance(obj, Mapping) and wrapper not in obj):
        if not isinstance(obj, Mapping) or wrapper not in obj:
            raise CheckpointError(f"{path}: expected the state dict under key {wrapper!r}")
        obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def read_state_dict(checkpoint: str | Path, spec: VariantSpec) -> dict[str, torch.Tensor]:
    """Read an official checkpoint with ``torch.load(weights_only=True)`` and unwrap it.

    A variant with ``checkpoint.parts`` takes one path per part, joined with ``,``.
    """
    ck = spec.checkpoint
    paths = split_checkpoint(str(checkpoint), spec.name)
    if not ck.parts:
        if len(paths) > 1:
            raise CheckpointError(f"{spec.name} takes one checkpoint file ({' or '.join(ck.files)}), "
                                  f"got {len(paths)}: {checkpoint}")
        obj = _load_file(Path(paths[0]), ck.wrapper, ck.wrapper_optional, spec)
        keys = {ck.prefix + str(k): v for k, v in obj.items()}
        return {k: v for k, v in keys.items() if not (ck.ignore and k.startswith(ck.ignore))}
    if len(paths) != len(ck.parts):
        names = ",".join(p.file for p in ck.parts)
        raise CheckpointError(f"{spec.name} is assembled from {len(ck.parts)} checkpoint files; pass "
                              f"them joined with ',' in this order: {names} (got {len(paths)})")
    out: dict[str, torch.Tensor] = {}
    for path, part in zip(paths, ck.parts, strict=True):
        obj = _load_file(Path(path), part.wrapper, spec=spec)
        keys = {part.prefix + str(k): v for k, v in obj.items()}
        out.update({k: v for k, v in keys.items() if not part.keep or k.startswith(part.keep)})
    return out


def check_keys(model: nn.Module, state_dict: Mapping[str, Any], source: str) -> None:
    """Raise :class:`CheckpointError` naming missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shaped = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(getattr(state_dict[k], "shape", ())) != tuple(v.shape)
    ]
    if missing or unexpected or shaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("mis-shaped (checkpoint != model)", shaped)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
        looks = lookalike_variants(state_dict)
        hint = f"; it looks like a checkpoint of {' or '.join(looks)}" if looks else ""
        raise CheckpointError(f"{source} does not match the variant's keys: " + "; ".join(parts) + hint)


def lookalike_variants(state_dict: Mapping[str, Any]) -> list[str]:
    """Registered variants whose key names and shapes equal ``state_dict``'s exactly.

    Models are built on the ``meta`` device, so no memory is allocated for weights.
    """
    from edge_sam_sdk.registry import get_variant, list_variants

    given = {k: tuple(getattr(v, "shape", ())) for k, v in state_dict.items()}
    out = []
    for name in list_variants():
        with torch.device("meta"):
            model = get_variant(name).build_model()
        if {k: tuple(v.shape) for k, v in model.state_dict().items()} == given:
            out.append(name)
    return out


def load_model(spec: VariantSpec, checkpoint: str) -> nn.Module:
    """Build ``spec``'s torch model and load ``checkpoint`` (a path, ``synthetic:SEED``, or an
    official reference such as ``official``, fetched into the cache when missing)."""
    seed = parse_synthetic(checkpoint)
    if seed is None:
        checkpoint = resolve_checkpoint(checkpoint, spec.name)
    model = spec.build_model()
    if seed is not None:
        state = synthetic_state_dict(model.state_dict(), seed)
    else:
        state = read_state_dict(checkpoint, spec)
    check_keys(model, state, checkpoint)
    model.load_state_dict(state, strict=True)
    return model.eval()
