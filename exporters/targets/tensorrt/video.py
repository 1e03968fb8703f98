"""TensorRT readiness of a video bundle's ONNX graphs (``docs/video.md``); no TensorRT needed.

:func:`check_video_bundle` runs :func:`.readiness.check_file` on each of the four graphs.
SAM 2.1 tiny's bundle (measured in ``docs/video.md``) is ready but for one problem: the
memory-attention graph's ``memory_tpos`` input is int64, which TensorRT 10 binds and 8.6
cannot. :func:`with_int32_inputs` is the exact rewrite for an engine build on 8.6: the input
becomes int32 followed by a ``Cast`` to int64 (the indices are 0..6); the bundle itself keeps
int64, which the SDK's ONNX Runtime engine feeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_sam_sdk.video.engine import GRAPHS

from .readiness import TRT_RANGE, check_file, check_model


def _graph_files(folder: Path) -> dict[str, Path]:
    """``{graph: .onnx path}`` from the manifest (read by
    :func:`edge_sam_sdk.video.bundle.read_video_manifest`; each file confined to the bundle by
    :func:`edge_sam_sdk.bundle.bundle_file`), else the ``<graph>.onnx`` files present (none, or a
    bundle of another target: ``InputError``)."""
    from edge_sam_sdk.bundle import bundle_file
    from edge_sam_sdk.errors import InputError
    from edge_sam_sdk.video.bundle import read_video_manifest

    if (folder / "manifest.json").is_file():
        manifest = read_video_manifest(folder)
        target = manifest.get("target", "onnx")
        if target != "onnx":
            raise InputError(f"{folder}: a {target} video bundle; TensorRT builds from ONNX graphs: "
                             "export one with edgesam export-video --target onnx")
        return {n: bundle_file(folder, str(g.get("onnx_file", g["file"])), f"{n} graph")
                for n, g in manifest["graphs"].items()}
    files = {n: folder / f"{n}.onnx" for n in GRAPHS if (folder / f"{n}.onnx").is_file()}
    if not files:
        raise InputError(f"{folder}: no video graphs (no manifest.json graphs, no {GRAPHS[0]}.onnx ...)")
    return files


def check_video_bundle(folder: str | Path) -> dict[str, dict[str, Any]]:
    """The TensorRT-readiness report (:func:`.readiness.check_model`) of each graph of the
    video bundle ``folder``, by graph name, plus ``"int32_inputs"``: the report after
    :func:`with_int32_inputs` (``ok`` when that rewrite is all an 8.6 engine build needs).
    A missing or unreadable graph file raises ``InputError``."""
    import onnx

    reports: dict[str, dict[str, Any]] = {}
    for name, path in _graph_files(Path(folder)).items():
        report = check_file(path)
        if not report["ok"]:
            rewritten = check_model(with_int32_inputs(onnx.load(str(path), load_external_data=False)))
            report["int32_inputs"] = {"ok": rewritten["ok"], "problems": rewritten["problems"]}
        reports[name] = report
    return reports


def summary(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest's summary of :func:`check_video_bundle`: ``{"ok", "trt_range", "problems":
    {graph: ["op node: why", ...]}, "int32_inputs_ok": bool}``."""
    return {"ok": all(r["ok"] for r in reports.values()), "trt_range": TRT_RANGE,
            "problems": {n: [f"{p['op']} {p['node']}: {p['why']}" for p in r["problems"]]
                         for n, r in reports.items() if r["problems"]},
            "int32_inputs_ok": all(r.get("int32_inputs", r)["ok"] for r in reports.values())}


def with_int32_inputs(model: Any) -> Any:
    """``model`` (an ``onnx.ModelProto``, changed in place) with each int64 graph input declared
    int32 and cast back to int64 by a ``Cast`` node in front of its consumers: exact for values
    within int32 (``memory_tpos`` is 0..6). An app then binds int32."""
    from onnx import TensorProto, helper

    graph = model.graph
    casts = []
    for value in graph.input:
        if value.type.tensor_type.elem_type != TensorProto.INT64:
            continue
        name, wide = value.name, f"{value.name}__int64"
        for node in graph.node:
            node.input[:] = [wide if i == name else i for i in node.input]
        for out in graph.output:
            if out.name == name:
                raise ValueError(f"graph input {name!r} is also an output; not rewritten")
        value.type.tensor_type.elem_type = TensorProto.INT32
        casts.append(helper.make_node("Cast", [name], [wide], name=f"{name}_to_int64", to=TensorProto.INT64))
    if casts:
        nodes = casts + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
    return model
