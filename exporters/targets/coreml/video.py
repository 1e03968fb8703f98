"""Core ML target for the video-tracking graphs (``docs/video.md``): one ``.mlpackage`` per graph.

The four stateless video graphs (``video_encoder``, ``memory_attention``, ``video_decoder``,
``memory_encoder``; SAM 2.1 and EdgeTAM) go through the image exporter's stages
(:mod:`.export`, :mod:`.lowering`): ``torch.export`` with the decoder's ``B``/``N`` ranges,
the exact decompositions, ``ct.convert`` to an mlprogram (fp32 or fp16 with the fp32-kept ops
of :mod:`.fp16`), a read-back of the saved package checked against the :class:`GraphSpec`.

Core ML has no int64 inputs: the converter declares ``memory_tpos`` (int64 in the spec and in
the ONNX bundle) as an **int32** input; an app feeds it int32 values (0..6). Every other input
and every output is float32, as in the ONNX bundle. Running the packages needs macOS.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_sam_sdk import __version__
from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.graphs import GraphSpec

from . import export as cx

if TYPE_CHECKING:
    import torch

SUFFIX = ".mlpackage"
RUNTIME = "coreml"  #: backend name; the packages run on macOS only
PRECISIONS = cx.PRECISIONS  #: what converts: ("fp32", "fp16")

#: What Core ML takes for a spec dtype (no int64 inputs: the converter narrows to int32).
FEED_DTYPES = {"float32": "float32", "int64": "int32", "int32": "int32"}


def check(precision: str) -> None:
    """Raise ``EdgeSamError`` (one line, naming the pip command) before any work when
    coremltools is missing or ``precision`` does not convert."""
    cx.coreml_options(precision)
    cx.require_coremltools()


def trace_feed(spec: GraphSpec, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feed`` with each dynamic axis of size 1 repeated to 2: ``torch.export`` specializes a
    size-1 sample to the constant 1 (the video decoder's ``B`` of one object), which would
    contradict the ``Dim(1, max)`` range. Values are only traced, never compared."""
    out = dict(feed)
    for t in spec.inputs:
        for axis, _ in t.dynamic_axes().items():
            if out[t.name].shape[axis] == 1:
                out[t.name] = np.repeat(out[t.name], 2, axis=axis)
    return out


def _describe(model: Any, spec: GraphSpec, precision: str) -> None:
    """Metadata Xcode shows: the graph, the precision, each input's and output's shape and dtype."""
    model.author = f"edgesam {__version__}"
    model.version = __version__
    model.short_description = f"edgesam video-tracking {spec.name} graph (docs/video.md)"
    for t in spec.inputs:
        shape = "x".join(map(str, t.shape))
        model.input_description[t.name] = f"{shape} {FEED_DTYPES.get(t.dtype, t.dtype)}"
    for t in spec.outputs:
        model.output_description[t.name] = f"{'x'.join(map(str, t.shape))} float32"
    model.user_defined_metadata.update({"edgesam.graph": spec.name, "edgesam.kind": "video",
                                        "edgesam.precision": precision, "edgesam.sdk_version": __version__})


def export_video_graph(module: torch.nn.Module, spec: GraphSpec, feed: dict[str, np.ndarray],
                       path: Path, precision: str = "fp32") -> dict[str, Any]:
    """Convert one video graph to an mlprogram at ``path``, read it back and check its input
    and output names and shapes against ``spec`` (``EdgeSamError`` listing the mismatches).

    ``feed`` holds sample inputs in ``spec`` order (``edge_sam_sdk.video.export.video_feed``).
    Returns json-serializable manifest facts: ``coreml`` (precision, deployment target,
    ranges of the dynamic axes, the inputs' Core ML dtypes, op precisions, seconds per stage)
    and ``feed_dtypes`` (what an app must feed: ``memory_tpos`` int32).
    """
    from .lowering import check_program, export_program

    check(precision)
    opts = cx.coreml_options(precision)
    path = Path(path)
    where = f"Core ML export of the video {spec.name} graph failed"
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        program = export_program(module, spec, trace_feed(spec, feed), opts.ranges())
    except Exception as exc:
        raise EdgeSamError(f"{where} in torch.export: {cx._first_line(exc)}") from exc
    lowered = check_program(program, module, spec, [feed])
    if not lowered["ok"]:
        raise EdgeSamError(f"{where}: the lowered torch.export program differs from the torch module: "
                           f"{lowered['outputs']}")
    t1 = time.perf_counter()
    try:
        model, kept = cx.convert_program(program, spec, opts)
    except Exception as exc:
        raise EdgeSamError(f"{where} in coremltools conversion: {cx._first_line(exc)}") from exc
    _describe(model, spec, precision)
    with cx._quiet():
        model.save(str(path))
    t2 = time.perf_counter()
    facts = cx.read_package(path)
    problems = cx.check_package(facts, spec, opts)
    if problems:
        raise EdgeSamError(f"{where}: the saved package differs from the graph spec: {'; '.join(problems)}")
    axes = {d for t in spec.inputs for d in t.shape if isinstance(d, str)}
    return {"coreml": {
        "precision": precision, "deployment_target": opts.deployment_target,
        "shape_ranges": {k: list(v) for k, v in opts.ranges().items() if k in axes},
        "input_dtypes": {f["name"]: f["dtype"] for f in facts["inputs"]},
        "op_precisions": facts["op_precisions"],
        "fp32_ops": kept if precision == "fp16" else "all (fp32 precision)",
        "export_check_s": round(t1 - t0, 1), "convert_s": round(t2 - t1, 1),
        "cpu_s": round(time.process_time() - cpu0, 1)},
        "lowered_program_parity": lowered,
        "feed_dtypes": {t.name: FEED_DTYPES.get(t.dtype, t.dtype) for t in spec.inputs}}
