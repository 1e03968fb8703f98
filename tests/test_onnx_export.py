"""ONNX exporter details: opset, dynamic axes, and the external-data path used for graphs
over 2 GiB (SAM ViT-H), exercised here on a small graph by lowering the size limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edge_sam_sdk.exporters.targets.onnx import export as onnx_export  # noqa: E402
from edge_sam_sdk.graphs import GraphSpec, TensorSpec  # noqa: E402
from edge_sam_sdk.runtimes import open_graph  # noqa: E402


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(64, 32)  # 8 KiB of weights: over the 1 KiB threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x))


SPEC = GraphSpec("tiny", (TensorSpec("x", ("B", 64)),), (TensorSpec("y", ("B", 32)),))


@pytest.mark.parametrize("large", [False, True], ids=["inline", "external-data"])
def test_export_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large: bool) -> None:
    if large:
        monkeypatch.setattr(onnx_export, "_PROTOBUF_LIMIT", 0)
    module = _Tiny().eval()
    feed = {"x": np.random.default_rng(0).normal(size=(2, 64)).astype(np.float32)}
    facts = onnx_export.export_onnx(module, SPEC, feed, tmp_path / "tiny.onnx")
    assert facts["opset"] >= 17
    assert facts["data_files"] == (["tiny.onnx.data"] if large else [])
    assert (tmp_path / "tiny.onnx.data").exists() == large
    model = onnx.load(str(tmp_path / "tiny.onnx"), load_external_data=False)
    assert model.opset_import[0].version >= 17
    backend = open_graph(tmp_path / "tiny.onnx")
    x = np.ones((5, 64), np.float32)  # dynamic batch
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(backend.run({"x": x})["y"], ref, atol=1e-6)


def test_bundle_with_external_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_sam_sdk import BundleError, load_bundle
    from edge_sam_sdk.exporters.export import export_bundle

    monkeypatch.setattr(onnx_export, "_PROTOBUF_LIMIT", 0)
    path = export_bundle("mobile_sam", "synthetic:0", tmp_path / "b")
    bundle = load_bundle(path)
    assert [d["file"] for d in bundle.graph("encoder")["data_files"]] == ["encoder.onnx.data"]
    (path / "encoder.onnx.data").unlink()
    with pytest.raises(BundleError, match="encoder.onnx.data"):
        load_bundle(path)
