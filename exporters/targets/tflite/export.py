"""TFLite / LiteRT target: litert-torch conversion with one static signature per decoder shape.

Decoder shape strategy (exact): litert-torch lowers most ops through JAX, which needs static
shapes (``dynamic_shapes`` fails on the first op, see :data:`DYNAMIC_SHAPES_ERROR`), and
padding a prompt with extra ``-1`` points changes SAM's output. So ``decoder.tflite`` holds
one signature per prompt point count, ``points_<N>`` for ``N`` in the exported range
(default :data:`DEFAULT_POINTS`, 0..16; EfficientSAM: its fixed 6), each with prompt batch
1 and sharing one copy of the weights. The tflite backend picks the signature by the feed's
``N`` and runs a batch of ``B`` prompts row by row (prompts never interact in the decoder).
The encoder is one signature, ``encoder``. Inputs and outputs carry the manifest's names.

fp16 and int8 are applied to the converted fp32 graphs by :mod:`.quantization`; the pipeline
step (options, parity, quality report) is :class:`.target.TfliteTarget`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_sam_sdk.errors import EdgeSamError, InputError
from edge_sam_sdk.graphs import GraphSpec, sample_feed

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_POINTS = (0, 16)
MAX_POINTS = 64
INSTALL_HINT = "pip install torch==2.13.0 'edgesam[tflite-export]'"
#: Keys of the target's ``tflite`` option: ``decoder_points`` (``"0-16"``, ``"2-4,16"``: one decoder
#: signature per count) and ``fp32_bundle`` (fp16/int8: quantize that fp32 tflite bundle's graphs
#: instead of converting again; same variant and checkpoint).
OPTIONS = ("decoder_points", "fp32_bundle")
#: What litert-torch 0.10 says to a decoder exported with dynamic B and N (measured once).
DYNAMIC_SHAPES_ERROR = ("AssertionError: float32[?,?,2] while lowering torch.ops.aten.add.Tensor "
                        "(point_coords + 0.5) through JAX, which has no dynamic dimensions")


class TfliteConversionError(EdgeSamError):
    """litert-torch could not convert a graph; the message names the op/shape that failed."""


def require_litert_torch(precision: str) -> None:
    """Fail before any work when the tflite exporter's packages are missing."""
    if precision not in PRECISIONS:
        raise EdgeSamError(f"precision {precision!r} is not supported for tflite; choose one of "
                           f"{list(PRECISIONS)}")
    needed = ["litert_torch", "ai_edge_litert"] + (["ai_edge_quantizer"] if precision != "fp32" else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgeSamError(f"target tflite needs {', '.join(missing)}, which is not installed; "
                           f"install it with: {INSTALL_HINT}")


def parse_points(value: str | tuple[int, ...] | list[int] | None) -> list[int]:
    """``"0-16"``, ``"2-4,16"``, ``"6"`` or a sequence -> the sorted decoder point counts."""
    if value is None:
        return list(range(DEFAULT_POINTS[0], DEFAULT_POINTS[1] + 1))
    counts: set[int] = set()
    try:
        if isinstance(value, str):
            for part in value.replace(" ", "").split(","):
                lo, _, hi = part.partition("-")
                counts.update(range(int(lo), int(hi or lo) + 1))
        else:
            counts.update(int(v) for v in value)
    except ValueError:
        counts = {-1}
    if not counts or min(counts) < 0 or max(counts) > MAX_POINTS:
        raise InputError(f"decoder points must be counts or ranges in 0..{MAX_POINTS} such as 0-16 or "
                         f"2-4,16; got {value!r}")
    return sorted(counts)


def signature_feeds(graph: GraphSpec, points: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """Signature name -> its sample feed (batch 1): ``encoder``, or ``points_<N>`` per ``N``."""
    if graph.name == "encoder":
        return {"encoder": sample_feed(graph)}
    fixed = next(t.shape[1] for t in graph.inputs if t.name == "point_coords")
    counts = [int(fixed)] if isinstance(fixed, int) else points
    return {f"points_{n}": sample_feed(graph, batch=1, points=n) for n in counts}


def parity_feed(graph: GraphSpec, signatures: list[str]) -> dict[str, np.ndarray]:
    """A parity feed the exported graph takes: batch 2 (rows), 3 points when exported."""
    counts = [int(s.split("_")[1]) for s in signatures if s.startswith("points_")]
    if not counts:
        return sample_feed(graph)
    n = 3 if 3 in counts else max(counts)
    return sample_feed(graph, batch=2, points=n)


class NamedGraph(nn.Module):
    """``graph``'s module with keyword inputs and a dict of outputs, so the ``.tflite``
    signature carries the manifest's tensor names (litert-torch names them after these)."""

    def __init__(self, module: nn.Module, graph: GraphSpec):
        super().__init__()
        self.module = module
        self.input_names = graph.input_names
        self.output_names = graph.output_names

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.module(*[inputs[n] for n in self.input_names])
        out = (out,) if isinstance(out, torch.Tensor) else tuple(out)
        return dict(zip(self.output_names, out, strict=True))


class CroppedConvTranspose(nn.Module):
    """A ``ConvTranspose2d`` with ``padding``/``output_padding``, computed as the same
    transposed conv without padding, then cropped to ``[p, p + out)`` per axis: the same
    arithmetic (torch defines the padded op as that crop), in a form LiteRT converts
    (litert-torch 0.10 fails on NanoSAM's ``k3 s2 p1 op1`` with "failed to legalize
    operation 'mhlo.convolution'")."""

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        self.conv = conv
        self.pad = tuple(int(p) for p in conv.padding)  # type: ignore[union-attr]
        self.out_pad = tuple(int(p) for p in conv.output_padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        y = nn.functional.conv_transpose2d(x, c.weight, c.bias, c.stride, 0, 0, c.groups, c.dilation)
        (ph, pw), (oh, ow) = self.pad, self.out_pad
        h, w = y.shape[-2] - 2 * ph + oh, y.shape[-1] - 2 * pw + ow
        return y[:, :, ph:ph + h, pw:pw + w]


def tflite_friendly(module: nn.Module) -> nn.Module:
    """``module``, or a copy with exact rewrites of ops litert-torch cannot convert
    (:class:`CroppedConvTranspose`); the original stays the parity reference."""
    padded = [n for n, m in module.named_modules() if isinstance(m, nn.ConvTranspose2d)
              and (any(m.padding) or any(m.output_padding))]  # type: ignore[arg-type]
    if not padded:
        return module
    copy = deepcopy(module)
    for name in padded:
        parent_name, _, child = name.rpartition(".")
        parent = copy.get_submodule(parent_name) if parent_name else copy
        setattr(parent, child, CroppedConvTranspose(getattr(parent, child)))
    return copy


@contextmanager
def _quiet_converter() -> Iterator[None]:
    """Silence litert-torch's progress lines and torch.export's warnings (ours are printed)."""
    old = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.export's FutureWarnings, once per signature
            yield
    finally:
        if old is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = old


def convert_fp32(module: nn.Module, graph: GraphSpec, path: Path, points: list[int],
                 variant: str, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Convert ``module`` to ``path`` (fp32) with :func:`signature_feeds`' signatures.

    Returns the manifest facts: ``extra.tflite`` (strategy, signatures, point range).
    Raises :class:`TfliteConversionError` naming the failing op/shape.
    """
    import litert_torch

    feeds = signature_feeds(graph, points)
    named = NamedGraph(tflite_friendly(module.eval()), graph).eval()
    if say and len(feeds) > 1:
        say(f"    {len(feeds)} signatures ({', '.join(feeds)}); each takes a few seconds")
    sig = "?"
    t0 = time.perf_counter()
    try:
        with _quiet_converter(), torch.no_grad():
            converter = litert_torch.Converter()
            for sig, feed in feeds.items():
                converter.signature(sig, named, sample_kwargs={n: torch.from_numpy(feed[n])
                                                               for n in graph.input_names})
            sig = ", ".join(feeds)
            model = converter.convert()
            model.export(str(path))
    except Exception as exc:  # the converter raises anything from AssertionError to RuntimeError
        raise TfliteConversionError(conversion_message(variant, graph.name, sig, exc)) from exc
    facts = strategy(graph, list(feeds)) | {"convert_seconds": round(time.perf_counter() - t0, 1)}
    return {"extra": {**graph.extra, "tflite": facts}}


def strategy(graph: GraphSpec, signatures: list[str]) -> dict[str, Any]:
    """The manifest's record of how shapes map to signatures."""
    if graph.name == "encoder":
        return {"strategy": "one static signature", "signatures": signatures}
    counts = [int(s.split("_")[1]) for s in signatures]
    return {
        "strategy": "one static signature per prompt point count N (batch 1 each); the backend "
                    "picks it by point_coords' N and runs a prompt batch row by row",
        "signatures": signatures,
        "points": counts,
        "batch": "any (rows run one at a time)",
        "dynamic_shapes": f"not used: {DYNAMIC_SHAPES_ERROR}",
    }


_DYN = str(-(2**63))


def conversion_message(variant: str, graph: str, signature: str, exc: BaseException) -> str:
    """One line naming the variant, graph, signature, op, shapes and source line that failed."""
    text = f"{type(exc).__name__}: {exc}"
    for note in getattr(exc, "__notes__", []) or []:
        text += "\n" + str(note)
    op = (_first(r"Lowering not found: (\S+)", text) or _first(r"call_function\[target=([\w.]+)\]", text)
          or _first(r"failed to legalize operation '([^']+)'", text) or _first(r"'(tfl\.\w+)' op", text)
          or _first(r"(aten\.\w+(?:\.\w+)?)", text))
    shapes = sorted(set(re.findall(r"\b(?:float|int|uint|bool)\d*\[[-\d,]+\]", text)))[:3]
    shapes += list(dict.fromkeys(re.findall(r"tensor<[\dx?]+x[a-z]+\d*>", text)))[:3]
    shapes = [s.replace(_DYN, "?") for s in shapes]
    source = text.split("Original traceback:")[-1]
    where = re.findall(r'File "([^"]+)", line (\d+), in (\w+)\n\s+(.+)', source)
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    parts = [f"{variant}: litert-torch cannot convert the {graph} graph (signature {signature})"]
    if op:
        parts.append(f"op {op}")
    if shapes:
        parts.append("shape " + ", ".join(shapes))
    if where:
        file, line, func, code = where[-1]
        parts.append(f"at {Path(file).name}:{line} in {func} ({code.strip()[:80]})")
    detail = f"{type(exc).__name__}: {first.replace(_DYN, '?')[:200]}"
    return "; ".join(parts) + f": {detail}"


def _first(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text)
    return m.group(1) if m else None


def reuse_fp32(source: tuple[Path, dict[str, Any]], name: str, graph: GraphSpec, points: list[int],
               say: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """Graph ``name`` of an fp32 tflite bundle (``--from-fp32``): its file and manifest facts.

    The decoder must hold exactly the requested point counts (EfficientSAM: its fixed one).
    """
    folder, manifest = source
    entry = manifest["graphs"][name]
    tfl = dict(entry.get("extra", {}).get("tflite", {}))
    have = [int(s.split("_")[1]) for s in tfl.get("signatures", []) if s.startswith("points_")]
    fixed = next((t.shape[1] for t in graph.inputs if t.name == "point_coords"), None)
    if name == "decoder" and not isinstance(fixed, int) and sorted(have) != points:
        raise InputError(f"{folder}: its decoder has point counts {have}, not the requested {points}; "
                         f"pass --decoder-points {','.join(map(str, have))} or convert again")
    say(f"    reusing the fp32 graph {folder / entry['file']} (not converting again)")
    return folder / entry["file"], {"extra": {**graph.extra, "tflite": tfl}}


def check_options(precision: str, options: dict[str, Any]) -> list[int]:
    """Refuse unknown or mismatched tflite options before any work; the decoder point counts."""
    require_litert_torch(precision)
    unknown = sorted(k for k, v in options.items() if k not in OPTIONS and v is not None)
    if unknown:
        raise InputError(f"unknown tflite options {unknown}; known: {list(OPTIONS)}")
    if options.get("fp32_bundle") is not None and precision == "fp32":
        raise InputError("--from-fp32 quantizes an fp32 bundle: use it with --precision fp16 or int8")
    return parse_points(options.get("decoder_points"))


def fp32_source(folder: str | Path, variant: str, checkpoint: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """``(folder, manifest)`` of an fp32 tflite bundle of ``variant`` with ``checkpoint``."""
    from edge_sam_sdk.bundle import read_manifest, verify_files

    path = Path(folder)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    found = (manifest["target"], manifest.get("precision"), manifest["variant"])
    if found != ("tflite", "fp32", variant):
        raise InputError(f"{path} is a {found[0]} {found[1]} bundle of {found[2]}; --from-fp32 needs "
                         f"an fp32 tflite bundle of {variant}")
    theirs = manifest.get("checkpoint", {})
    if (theirs.get("source"), theirs.get("sha256")) != (checkpoint.get("source"), checkpoint.get("sha256")):
        raise InputError(f"{path} was exported from checkpoint {theirs.get('source')!r}, not "
                         f"{checkpoint.get('source')!r}")
    return path, manifest
