"""ONNX target: TorchScript-based ``torch.onnx.export``, onnxsim, checker, external data."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_sam_sdk.graphs import GraphSpec

from .nchwc import keep_nchwc

OPSET = 17
#: onnxsim passes never run: ``fuse_preceding_mul_into_conv`` folds GELU's trailing ``* 0.5``
#: into the next Conv's weights, which leaves ``Div-Erf-Add-Mul`` that onnxruntime no longer
#: fuses into one Gelu kernel (MobileSAM's encoder: 12 of 23 GELUs left as 4 element-wise ops).
NEVER_RUN = ("fuse_preceding_mul_into_conv",)
_PROTOBUF_LIMIT = 2 * 1024**3 - 1024**2  # leave headroom below protobuf's 2 GiB


def export_onnx(module: torch.nn.Module, graph: GraphSpec, feed: dict[str, np.ndarray],
                path: Path, simplify: bool = True, skipped_optimizers: Sequence[str] = (),
                nchwc_rewrites: bool = True) -> dict[str, Any]:
    """Export ``module`` to ``path`` following ``graph`` (names, dynamic axes).

    Graphs over 2 GiB (SAM ViT-H) are written with external data in ``<file>.data`` and
    skip onnxsim (which cannot hold them in one protobuf). ``skipped_optimizers`` names
    onnxsim passes not to run (TensorRT-ready graphs skip the onnxruntime-only fusions).
    ``nchwc_rewrites`` applies ``exporters.targets.onnx.nchwc`` (squeeze-excite gates at full size, tanh
    GELUs as opset-20 ``Gelu``: same values, fewer layout reorders in onnxruntime); TensorRT-ready
    graphs pass False. Returns export facts for the manifest (opset, simplified, data file
    names, the rewrites made).
    """
    import onnx

    args = tuple(torch.from_numpy(feed[n]) for n in graph.input_names)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(), args, str(raw),
                input_names=graph.input_names, output_names=graph.output_names,
                dynamic_axes=graph.dynamic_axes() or None,
                opset_version=OPSET, do_constant_folding=True, dynamo=False,
            )
        model = onnx.load(str(raw))  # pulls in external data the exporter may have written
    large = not _fits_bytesize(model) or model.ByteSize() > _PROTOBUF_LIMIT
    simplified = False
    if simplify and not large:
        model, simplified = _simplify(model, skipped_optimizers)
    nchwc: dict[str, int] = {}
    if nchwc_rewrites and not large:
        model, nchwc = keep_nchwc(model)
    if large:
        data_name = path.name + ".data"
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
        onnx.checker.check_model(str(path))
        data_files = [data_name] if (path.parent / data_name).exists() else []
    else:
        onnx.checker.check_model(model)
        onnx.save_model(model, str(path))
        data_files = []
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"opset": int(opset), "simplified": simplified, "data_files": data_files,
            **({"nchwc_rewrites": nchwc} if nchwc else {})}


def _fits_bytesize(model: Any) -> bool:
    try:
        model.ByteSize()
        return True
    except Exception:  # protobuf refuses to size messages over 2 GiB
        return False


def _simplify(model: Any, skipped_optimizers: Sequence[str] = ()) -> tuple[Any, bool]:
    try:
        import onnxsim
    except ImportError:
        warnings.warn("onnxsim is not installed; the ONNX graph is saved unsimplified "
                      "(pip install 'edgesam[export]')", stacklevel=2)
        return model, False
    simplified, ok = onnxsim.simplify(model, skipped_optimizers=[*NEVER_RUN, *skipped_optimizers])
    return (simplified, True) if ok else (model, False)
