"""Core ML target: ``.mlpackage`` (mlprogram) graphs converted with coremltools from
``torch.export`` programs (works on Linux; running them needs macOS).

Per graph: :func:`~.lowering.export_program` (``Dim`` ranges for the decoder's ``B``
and ``N``, decompositions), ``ct.convert`` to an mlprogram for ``minimum_deployment_target``
(iOS 17 by default), fp16 compute with the fp32-kept ops of :mod:`.fp16`, optional
weight compression (int8 linear, or k-means palettization to 1..8 bits), metadata Xcode
shows (author, license, description of every input and output, the pre/post-processing as
JSON), and a read-back of the saved package checked against the :class:`GraphSpec`.
Graph inputs and outputs stay float32, with the ONNX bundle's names and semantics.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk import __version__
from edge_sam_sdk.errors import BackendNotAvailableError, EdgeSamError
from edge_sam_sdk.graphs import GraphSpec
from edge_sam_sdk.registry import VariantSpec

PRECISIONS = ("fp32", "fp16")
DEPLOYMENT_TARGETS = ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")
DEFAULT_DEPLOYMENT_TARGET = "iOS17"
PALETTE_BITS = (1, 2, 3, 4, 6, 8)
#: Weights smaller than this many elements are left uncompressed (biases, norms, tokens).
COMPRESS_MIN_ELEMENTS = 2048
INSTALL_HINT = "pip install 'edgesam[coreml]'"

INPUT_TEXT = {
    "image": "{shape} float32: RGB image resized to the encoder input as edgesam.processing says "
             "(longest side and zero padding, or stretch), normalized (x - mean) / std in uint8 units",
    "image_embeddings": "{shape} float32: the encoder's image embeddings",
    "high_res_feats_0": "{shape} float32: the encoder's high-resolution features (level 0)",
    "high_res_feats_1": "{shape} float32: the encoder's high-resolution features (level 1)",
    "point_coords": "{shape} float32: prompt points (x, y) in the prompt frame; boxes as two corners",
    "point_labels": "{shape} float32: 1 foreground, 0 background, 2/3 box corners, -1 padding",
    "mask_input": "{shape} float32: low-res mask logits of an earlier prediction",
    "has_mask_input": "{shape} float32: 1 where mask_input is used, else 0",
}
OUTPUT_TEXT = {
    "image_embeddings": "{shape} float32: image embeddings for the decoder",
    "high_res_feats_0": "{shape} float32: high-resolution features for the decoder",
    "high_res_feats_1": "{shape} float32: high-resolution features for the decoder",
    "low_res_masks": "{shape} float32: mask logits of every mask token (select host-side)",
    "iou_predictions": "{shape} float32: predicted IoU of every mask token",
    "object_score_logits": "{shape} float32: object presence logit (> 0: present)",
}


@dataclass(frozen=True)
class CoreMLOptions:
    """Core ML export options.

    Attributes:
        precision: ``"fp16"`` (compute in fp16 but the ops of :mod:`.fp16`) or ``"fp32"``.
        weights_int8: store weights as int8 (per-channel symmetric linear quantization).
        palettize: store weights as ``2**bits``-entry look-up tables (k-means), bits in
            :data:`PALETTE_BITS`; exclusive with ``weights_int8``.
        deployment_target: ``minimum_deployment_target`` (a ``coremltools.target`` name).
        max_prompts: upper bound of the decoder's prompt batch ``B`` (lower bound 1).
        max_points: upper bound of the decoder's point count ``N`` (clicks, box corners and
            padding points together; lower bound 1).
    """

    precision: str = "fp32"
    weights_int8: bool = False
    palettize: int | None = None
    deployment_target: str = DEFAULT_DEPLOYMENT_TARGET
    max_prompts: int = 64
    max_points: int = 16

    def ranges(self) -> dict[str, tuple[int, int]]:
        """Ranges of the dynamic axes: ``{"B": (1, max_prompts), "N": (1, max_points)}``."""
        return {"B": (1, self.max_prompts), "N": (1, self.max_points)}

    @property
    def compression(self) -> str:
        if self.weights_int8:
            return "int8"
        return f"palettize{self.palettize}" if self.palettize else "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"compression": self.compression}


def coreml_options(precision: str, options: Mapping[str, Any] | None = None) -> CoreMLOptions:
    """Validate ``precision`` and the target options; a bad value raises ``EdgeSamError``."""
    options = dict(options or {})
    known = set(CoreMLOptions.__dataclass_fields__) - {"precision"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise EdgeSamError(f"unknown Core ML options {unknown}; known: {sorted(known)}")
    opts = CoreMLOptions(precision=precision, **options)
    if opts.precision not in PRECISIONS:
        raise EdgeSamError(f"precision {precision!r} is not supported for coreml; use one of {PRECISIONS}")
    if opts.deployment_target not in DEPLOYMENT_TARGETS:
        raise EdgeSamError(f"unknown Core ML deployment target {opts.deployment_target!r}; "
                           f"known: {', '.join(DEPLOYMENT_TARGETS)}")
    if opts.weights_int8 and opts.palettize:
        raise EdgeSamError("choose one weight compression: --weights-int8 or --palettize BITS")
    if opts.palettize is not None and opts.palettize not in PALETTE_BITS:
        raise EdgeSamError(f"--palettize takes {', '.join(map(str, PALETTE_BITS))} bits, "
                           f"got {opts.palettize}")
    for name in ("max_prompts", "max_points"):
        value = getattr(opts, name)
        if not isinstance(value, int) or not 1 <= value <= 1024:
            raise EdgeSamError(f"{name} must be an integer in 1..1024, got {value!r}")
    return opts


@contextlib.contextmanager
def _quiet(level: int = logging.ERROR) -> Iterator[io.StringIO]:
    """Silence coremltools' log warnings, Python warnings (its own deprecations, per node)
    and progress bars; yields the captured stderr."""
    logger = logging.getLogger("coremltools")
    old = logger.level
    logger.setLevel(level)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        logger.setLevel(old)


def require_coremltools() -> Any:
    """Import coremltools (quietly); missing, raise a one-line error naming the pip extra."""
    try:
        with _quiet():
            import coremltools
    except ImportError:
        raise BackendNotAvailableError(
            f"the coreml target needs the package 'coremltools', which is not installed; "
            f"install it with: {INSTALL_HINT}") from None
    return coremltools


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:400] if text else ''}"


def _kmeans_lut(bits: int) -> Any:
    """A ``lut_function`` for coremltools' custom palettization: 1-D k-means in numpy.

    Returns ``(lut, indices)`` for a weight array: ``2**bits`` float centroids (quantile
    start, 12 Lloyd steps on the sorted values) and one uint8 index per weight.
    """
    def lut_function(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = weight.reshape(-1).astype(np.float64)
        k = 1 << bits
        centroids = np.quantile(flat, (np.arange(k) + 0.5) / k)
        order = np.sort(flat)
        for _ in range(12):
            edges = (centroids[1:] + centroids[:-1]) / 2
            groups = np.split(order, np.searchsorted(order, edges))
            centroids = np.array([g.mean() if g.size else c for g, c in zip(groups, centroids, strict=True)])
        edges = (centroids[1:] + centroids[:-1]) / 2
        indices = np.searchsorted(edges, flat).astype(np.uint8)
        return centroids.astype(weight.dtype), indices

    return lut_function


def _compress(ct: Any, model: Any, opts: CoreMLOptions) -> Any:
    from coremltools.optimize import coreml as cto

    if opts.weights_int8:
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", weight_threshold=COMPRESS_MIN_ELEMENTS))
        return cto.linear_quantize_weights(model, config=config)
    if opts.palettize:
        config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(
            mode="custom", lut_function=_kmeans_lut(opts.palettize), weight_threshold=COMPRESS_MIN_ELEMENTS))
        return cto.palettize_weights(model, config=config)
    return model


def _describe(model: Any, graph: GraphSpec, variant: VariantSpec, opts: CoreMLOptions,
              checkpoint: str, fp32_ops: dict[str, int]) -> None:
    """Metadata Xcode shows: author, license, descriptions, and the bundle facts as JSON."""
    from edge_sam_sdk.graphs import graph_specs

    model.author = f"edgesam {__version__} (exported from {checkpoint})"
    model.license = variant.license
    model.version = __version__
    about = variant.description or variant.family
    model.short_description = (f"{variant.name} {graph.name} graph ({about}); "
                               "pre/post-processing in the metadata key edgesam.processing")
    for t in graph.inputs:
        model.input_description[t.name] = INPUT_TEXT.get(t.name, "{shape} float32").format(
            shape="x".join(map(str, t.shape)))
    for t in graph.outputs:
        model.output_description[t.name] = OUTPUT_TEXT.get(t.name, "{shape} float32").format(
            shape="x".join(map(str, t.shape)))
    decoder = graph_specs(variant)["decoder"]
    axes = {d for t in graph.inputs for d in t.shape if isinstance(d, str)}
    model.user_defined_metadata.update({
        "edgesam.variant": variant.name, "edgesam.family": variant.family, "edgesam.graph": graph.name,
        "edgesam.decoder_kind": variant.decoder_kind, "edgesam.sdk_version": __version__,
        "edgesam.checkpoint": checkpoint, "edgesam.precision": opts.precision,
        "edgesam.compression": opts.compression, "edgesam.deployment_target": opts.deployment_target,
        "edgesam.processing": json.dumps(variant.processing.to_dict()),
        "edgesam.mask_selection": json.dumps(decoder.extra["mask_selection"]),
        "edgesam.shape_ranges": json.dumps({k: v for k, v in opts.ranges().items() if k in axes}),
        "edgesam.fp32_ops": json.dumps(fp32_ops) if opts.precision == "fp16" else "all (fp32 precision)",
    })


def convert_program(program: Any, graph: GraphSpec, opts: CoreMLOptions) -> tuple[Any, dict[str, int]]:
    """``ct.convert`` a lowered program to an mlprogram (not loaded); also the fp32-kept op counts."""
    ct = require_coremltools()
    from .fp16 import Fp16Selector

    selector = Fp16Selector()
    precision = (ct.transform.FP16ComputePrecision(op_selector=selector) if opts.precision == "fp16"
                 else ct.precision.FLOAT32)
    with _quiet(), np.errstate(all="ignore"):
        model = ct.convert(program, convert_to="mlprogram", compute_precision=precision,
                           minimum_deployment_target=getattr(ct.target, opts.deployment_target),
                           outputs=[ct.TensorType(name=n, dtype=np.float32) for n in graph.output_names],
                           skip_model_load=True)
    return model, dict(sorted(selector.kept.items()))


def export_coreml(module: Any, graph: GraphSpec, feed: dict[str, np.ndarray], path: Path,
                  variant: VariantSpec, opts: CoreMLOptions, checkpoint: str = "",
                  check_feeds: list[dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """Export ``module`` (a graph module of ``variant``) to the ``.mlpackage`` folder ``path``.

    ``feed`` holds sample inputs in ``graph`` order (the decoder's ``B``/``N`` inside the
    ranges). With ``check_feeds`` the lowered torch program is first run against ``module``
    on them (:func:`.lowering.check_program`); out of bound is an error. Any failure
    raises one ``EdgeSamError`` naming the variant, the graph, the stage and the converter's
    message (which names the op or shape). Returns the facts for the manifest's graph entry:
    ``coreml`` (options, ranges, op precisions, wall seconds per stage and CPU seconds in all)
    and ``lowered_program_parity``.
    """
    from .lowering import check_program, export_program

    where = f"{variant.name}: Core ML export of the {graph.name} graph failed"
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        program = export_program(module, graph, feed, opts.ranges())
    except Exception as exc:
        raise EdgeSamError(f"{where} in torch.export: {_first_line(exc)}") from exc
    t1 = time.perf_counter()
    lowered = check_program(program, module, graph, check_feeds) if check_feeds else None
    if lowered is not None and not lowered["ok"]:
        raise EdgeSamError(f"{where}: the lowered torch.export program differs from the torch module: "
                           f"{lowered['outputs']}")
    t2 = time.perf_counter()
    try:
        model, kept = convert_program(program, graph, opts)
    except EdgeSamError:
        raise
    except Exception as exc:
        raise EdgeSamError(f"{where} in coremltools conversion: {_first_line(exc)}") from exc
    try:
        with _quiet():
            model = _compress(require_coremltools(), model, opts)
    except Exception as exc:
        raise EdgeSamError(f"{where} in weight compression ({opts.compression}): {_first_line(exc)}") from exc
    _describe(model, graph, variant, opts, checkpoint, kept)
    with _quiet():
        model.save(str(path))
    t3 = time.perf_counter()
    facts = read_package(path)
    problems = check_package(facts, graph, opts)
    if problems:
        raise EdgeSamError(f"{where}: the saved package differs from the graph spec: {'; '.join(problems)}")
    return {"coreml": opts.to_dict() | {
        "shape_ranges": {k: list(v) for k, v in opts.ranges().items()
                         if any(k in t.shape for t in graph.inputs)},
        "op_precisions": facts["op_precisions"],
        "export_s": round(t1 - t0, 1), "check_s": round(t2 - t1, 1), "convert_s": round(t3 - t2, 1),
        "cpu_s": round(time.process_time() - cpu0, 1)},
        "lowered_program_parity": lowered}


def read_package(path: Path) -> dict[str, Any]:
    """Read a saved ``.mlpackage`` without compiling it (works on any OS).

    Returns ``inputs`` / ``outputs`` as ``[{"name", "dtype", "shape", "ranges"}]`` (``ranges``:
    ``[lo, hi]`` per axis, ``hi`` -1 when unbounded; outputs: ``shape`` only as declared),
    ``metadata`` (user-defined), ``author``, ``license``, ``description``,
    ``input_description`` and ``op_precisions`` (see :func:`.fp16.op_precisions`).
    """
    ct = require_coremltools()
    from coremltools.proto import FeatureTypes_pb2

    from .fp16 import op_precisions

    with _quiet():
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    names = {v: k for k, v in FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items()}

    def feature(f: Any) -> dict[str, Any]:
        arr = f.type.multiArrayType
        ranges = [[int(r.lowerBound), int(r.upperBound)] for r in arr.shapeRange.sizeRanges]
        shape = [int(d) for d in arr.shape]
        return {"name": f.name, "dtype": names.get(arr.dataType, str(arr.dataType)).lower(),
                "shape": shape, "ranges": ranges or [[d, d] for d in shape]}

    meta = spec.description.metadata
    return {"inputs": [feature(f) for f in spec.description.input],
            "outputs": [feature(f) for f in spec.description.output],
            "metadata": dict(meta.userDefined), "author": meta.author, "license": meta.license,
            "description": meta.shortDescription,
            "input_description": {f.name: f.shortDescription for f in spec.description.input},
            "op_precisions": op_precisions(spec), "spec_version": int(spec.specificationVersion)}


def check_package(facts: dict[str, Any], graph: GraphSpec, opts: CoreMLOptions) -> list[str]:
    """Differences between a package read by :func:`read_package` and ``graph`` (empty: none).

    Checks input and output names in order, float32 I/O (int32 for a spec's int64 or int32
    input: Core ML has no int64), every input's static sizes and the dynamic axes' ranges
    (``opts.ranges()``).
    """
    problems = []
    ranges = opts.ranges()
    for kind, declared in (("input", graph.inputs), ("output", graph.outputs)):
        saved = facts[kind + "s"]
        if [f["name"] for f in saved] != [t.name for t in declared]:
            problems.append(f"{kind} names {[f['name'] for f in saved]} != {[t.name for t in declared]}")
            continue
        for f, t in zip(saved, declared, strict=True):
            want_dtype = "int32" if t.dtype in ("int64", "int32") else "float32"  # Core ML: no int64
            if f["dtype"] != want_dtype:
                problems.append(f"{kind} {t.name} has dtype {f['dtype']}, expected {want_dtype}")
            if kind == "output":
                continue
            want = [list(ranges[d]) if isinstance(d, str) else [d, d] for d in t.shape]
            if f["ranges"] != want:
                problems.append(f"input {t.name} has sizes {f['ranges']}, expected {want}")
    return problems


#: Core ML against torch on macOS: fp16 bounds are provisional (not yet measured on a Mac).
PARITY_BOUNDS = {"fp32": {"max_abs": 1e-3, "rel_l2": 1e-3}, "fp16": {"max_abs": 5e-2, "rel_l2": 2e-2}}


def bundle_parity(folder: Path, manifest: dict[str, Any], specs: dict[str, GraphSpec],
                  modules: dict[str, Any], opts: CoreMLOptions) -> dict[str, Any]:
    """The manifest's ``export_parity`` for a Core ML bundle being written in ``folder``.

    Not on macOS: ``{"measured": false, "why": ...}`` plus what was checked here (every
    package read back against its spec during export, and the lowered program's parity).
    On macOS: each graph run with Core ML against torch on the sample feed under
    :data:`PARITY_BOUNDS`; an fp32 graph out of bound is an error, fp16 is reported.
    """
    import dataclasses
    import sys

    from edge_sam_sdk.graphs import sample_feed

    lowered = {n: manifest["graphs"][n].pop("lowered_program_parity", None) for n in ("encoder", "decoder")}
    out: dict[str, Any] = {"lowered_program": lowered,
                           "package_checked": "names, dtypes, sizes and ranges read back from the specs"}
    if sys.platform != "darwin":
        return {"measured": False, "why": "Core ML runs only on macOS"} | out
    from edge_sam_sdk.runtimes.coreml_backend import CoreMLBackend

    from ...parity import measure_parity

    out["measured"] = True
    for name in ("encoder", "decoder"):
        graph = dataclasses.replace(specs[name], **PARITY_BOUNDS[opts.precision])
        backend = CoreMLBackend(folder / manifest["graphs"][name]["file"])
        figures = measure_parity(backend, modules[name], graph, sample_feed(graph))
        out[name] = figures
        if not figures["ok"] and opts.precision == "fp32":
            raise EdgeSamError(f"{name} graph fails parity with torch under Core ML: {figures['outputs']}")
    return out
