"""Test vectors of the pre/post-processing, for ports to other languages (Kotlin, Swift, C++).

``edgesam vectors --out DIR`` writes, for a few variants (together they use every rule of
:class:`~edge_sam_sdk.processing.ProcessingSpec`), a few image sizes and prompts, the input
and the expected output of every processing step, computed by :mod:`edge_sam_sdk.processing`
itself. A port passes when it reproduces them within ``index.json``'s ``tolerances``.

Layout (arrays are ``.npy`` files, version 1.0 headers, C order, little-endian)::

    DIR/index.json               format, tolerances, cases (below)
    DIR/<case>/image.npy         HxWx3 uint8 RGB input
    DIR/<case>/resized.npy       hxwx3 resized image: uint8 for pil_* rules, float32 pixel
                                 values (0..255 scale, not rounded) for torch_* rules
    DIR/<case>/model_input.npy   1x3xSxS float32 encoder input (normalized, zero padded)
    DIR/<case>/low_res.npy       MxLxL float32 decoder logits for one prompt (synthetic)
    DIR/<case>/mask_logits.npy   MxHxW float32 every token's logits at the original size
    DIR/<case>/masks.npy         MxHxW bool, mask_logits > mask_threshold

Each case in ``index.json``: ``name``, ``variant``, ``processing`` (the manifest's
``processing`` object), ``mask_selection`` (the decoder's ``extra.mask_selection``),
``original_size`` ``[H, W]``, ``resized_size`` ``[h, w]``, the file names above, ``iou``
(the ``M`` decoder scores that go with ``low_res``), ``stability`` (``M`` stability scores,
offset 1), ``selection`` (``{"multimask"|"single": {"tokens": [...], "scores": [...]}}``
after SAM 2's fallback, which may replace the single token), and ``prompts``: a list of
``{"name", "points" Nx2 | null, "labels" N | null, "box" XYXY | null, "point_coords"
Kx2, "point_labels" K}``, the last two being the decoder inputs (prompt frame, padding
applied) for batch 1.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from . import processing as P
from . import resize as R
from .errors import EdgeSamError

FORMAT = "edgesam-vectors"
VERSION = 1

#: Variants whose processing specs together use every rule (resize, interpolation,
#: postprocess, mask interpolation, padding, box order, fixed point count, clamp, fallback)
#: and every token selection (TinySAM: several tokens in single-mask mode).
VARIANTS = ("mobile_sam", "nanosam", "efficientvit_sam_l0", "efficient_sam_vitt", "sam2_1_hiera_tiny",
            "tinysam")
#: Image sizes ``(H, W)``: landscape and portrait, odd sizes (every variant) ...
SIZES = ((150, 220), (301, 97))
#: ... and larger than the input (shrinking: the antialiased rules, torch bilinear without
#: antialias), for these variants; 1500x400 makes Pillow run its vertical pass first.
LARGE: dict[str, tuple[tuple[int, int], ...]] = {
    "mobile_sam": ((1200, 900),), "nanosam": ((1200, 900), (1500, 400)),
    "sam2_1_hiera_tiny": ((1200, 900),), "efficient_sam_vitt": ((1200, 900),)}

TOLERANCES = {
    "resized_uint8_levels": 1,
    "resized_float_abs": 1e-3,
    "model_input_abs": 1e-4,
    "prompt_abs": 1e-3,
    "mask_logits_abs": 1e-4,
    # Masks must be identical; a pixel may differ only if its expected logit is within
    # mask_ambiguity_abs of the threshold (float32 rounding), at most mask_ambiguous_max per case.
    "mask_ambiguity_abs": 1e-5,
    "mask_ambiguous_max": 0,
    "scores_abs": 1e-6,
}

PROMPTS: list[tuple[str, list[list[float]] | None, list[float] | None, list[float] | None]] = [
    # (name, points as fractions of (W, H), labels, box as fractions)
    ("point", [[0.31, 0.57]], [1.0], None),
    ("two_points", [[0.31, 0.57], [0.7, 0.25]], [1.0, 0.0], None),
    ("box", None, None, [0.12, 0.2, 0.61, 0.83]),
    ("box_and_point", [[0.4, 0.5]], [1.0], [0.12, 0.2, 0.61, 0.83]),
]


def synthetic_logits(tokens: int, size: int, unstable_first: bool = False) -> np.ndarray:
    """``tokens x size x size`` float32 smooth fields crossing 0 (each token its own pattern).

    ``unstable_first`` makes token 0 hover near zero, so SAM 2's stability fallback fires.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    out = np.empty((tokens, size, size), np.float64)
    for t in range(tokens):
        wave = np.sin(2 * np.pi * (1.3 + t) * xx + 0.7 * t) * np.cos(2 * np.pi * (0.8 + 0.5 * t) * yy)
        out[t] = 3.0 * wave + 1.5 * (xx - 0.5) - 0.4 * t + 0.25
    if unstable_first:
        out[0] *= 0.01
    return out.astype(np.float32)


def _case(variant: str, size: tuple[int, int], folder: Path) -> dict[str, Any]:
    from .graphs import graph_specs
    from .registry import get_variant
    from .visualize import demo_image

    spec = get_variant(variant)
    proc = spec.processing
    decoder = graph_specs(spec)["decoder"]
    selection = dict(decoder.extra.get("mask_selection", {}))
    tokens = int(next(t.shape[1] for t in decoder.outputs if t.name == "low_res_masks"))
    name = f"{variant}_{size[0]}x{size[1]}"
    d = folder / name
    d.mkdir(parents=True)
    image = demo_image(*size)
    h, w = P.resized_shape(size, proc.input_size, proc.resize)
    resized = R.resize_image(image, (h, w), proc.interpolation)
    resized = resized if resized.dtype == np.uint8 else resized.astype(np.float32)
    model_input, _ = P.preprocess(image, proc)
    low = synthetic_logits(tokens, proc.low_res_size, unstable_first="single_fallback" in selection)
    iou = np.linspace(0.55, 0.95, tokens, dtype=np.float32)[::-1].copy()
    logits = P.postprocess_masks(low, size, proc)
    files = {"image": image, "resized": resized, "model_input": model_input, "low_res": low,
             "mask_logits": logits, "masks": P.threshold_masks(logits, proc)}
    for key, arr in files.items():
        np.save(d / f"{key}.npy", np.ascontiguousarray(arr))
    chosen = {}
    multi = list(selection.get("multimask", [1, 2, 3]))
    for mode, toks in (("multimask", multi), ("single", list(selection.get("single", [0])))):
        picked = P.select_tokens(low[None], iou[None], toks, selection.get("single_fallback"), multi,
                                 proc.mask_threshold)[0]
        chosen[mode] = {"tokens": picked.tolist(), "scores": iou[picked].astype(float).tolist()}
    return {
        "name": name, "variant": variant, "processing": proc.to_dict(), "mask_selection": selection,
        "original_size": list(size), "resized_size": [h, w],
        **{key: f"{name}/{key}.npy" for key in files},
        "iou": iou.astype(float).tolist(),
        "stability": P.stability_score(low, proc.mask_threshold, 1.0).astype(float).tolist(),
        "selection": chosen,
        "prompts": [_prompt(p, size, proc) for p in PROMPTS],
    }


def _prompt(p: tuple[Any, ...], size: tuple[int, int], proc: P.ProcessingSpec) -> dict[str, Any]:
    name, points, labels, box = p
    hh, ww = size
    pts = None if points is None else np.array(points) * [ww, hh]
    bx = None if box is None else np.array(box) * [ww, hh, ww, hh]
    coords = None if pts is None else P.transform_coords(pts[None], size, proc)
    lab = None if labels is None else np.array([labels], np.float32)
    boxes = None if bx is None else P.transform_boxes(bx[None], size, proc)
    pc, pl = P.decoder_prompts(coords, lab, boxes, 1, proc)
    return {"name": name, "points": None if pts is None else pts.tolist(), "labels": labels,
            "box": None if bx is None else bx.tolist(), "point_coords": pc[0].astype(float).tolist(),
            "point_labels": pl[0].astype(float).tolist()}


def write_vectors(out: str | Path, variants: tuple[str, ...] = VARIANTS,
                  sizes: tuple[tuple[int, int], ...] = SIZES, large: bool = True, overwrite: bool = False,
                  progress: Callable[[str], None] | None = None) -> Path:
    """Write the vectors to folder ``out`` (atomically: a temporary sibling renamed at the end).

    Every variant gets every size in ``sizes``; with ``large`` those in :data:`LARGE` also get
    their large images (about 350 MB in all with the defaults, mostly ``model_input`` and
    ``mask_logits`` arrays).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise EdgeSamError(f"{out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        cases = []
        for variant in variants:
            for size in tuple(sizes) + (LARGE.get(variant, ()) if large else ()):
                if progress:
                    progress(f"{variant} {size[0]}x{size[1]}")
                cases.append(_case(variant, size, tmp))
        index = {"format": FORMAT, "version": VERSION, "sdk_version": __version__,
                 "tolerances": TOLERANCES, "cases": cases}
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
