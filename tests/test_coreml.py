"""Core ML target: every variant converts here (fp16), the saved packages read back with the
graph specs' names, dtypes, sizes and flexible ranges, the overflow-prone ops stay fp32, the
metadata is there, and errors are clear and leave nothing behind. Running Core ML (prediction,
parity against torch) needs macOS: those tests skip elsewhere."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coremltools", reason="the coreml extra is not installed: pip install 'edgesam[coreml]'")

from conftest import HEAVY, get_model  # noqa: E402
from edge_sam_sdk import BackendNotAvailableError, EdgeSamError, load_bundle  # noqa: E402
from edge_sam_sdk.exporters.targets.coreml import export as cx  # noqa: E402
from edge_sam_sdk.exporters.targets.coreml.fp16 import FP32_OP_TYPES  # noqa: E402
from edge_sam_sdk.exporters.targets.coreml.lowering import _bicubic_weights, bicubic_matrix  # noqa: E402
from edge_sam_sdk.graphs import GraphSpec, TensorSpec, graph_specs, sample_feed  # noqa: E402
from edge_sam_sdk.registry import get_variant, list_variants  # noqa: E402

MACOS = pytest.mark.skipif(sys.platform != "darwin", reason="Core ML runs only on macOS")
NOT_MACOS = pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
#: Graphs converted in the default run (every decoder kind and encoder family at least once);
#: the rest of the registry converts with EDGESAM_ALL_COREML=1 (minutes per graph on 2 cores).
LIGHT_ENCODERS = ("mobile_sam", "nanosam", "efficientvit_sam_l0", "efficient_sam_vitt", "sam2_1_hiera_tiny",
                  "edge_sam", "tinysam")
DEFAULT_DECODERS = ("mobile_sam", "nanosam", "efficient_sam_vitt", "sam2_1_hiera_tiny", "edge_sam")
ALL_COREML = bool(os.environ.get("EDGESAM_ALL_COREML"))
#: Ops that must exist in fp32 in every decoder (attention, norms, prompt Fourier features).
DECODER_FP32 = {"softmax", "layer_norm", "matmul", "sin", "cos"}
SMALL = "nanosam"


def _graph_params() -> list[object]:
    out = []
    why = "converting every registered graph takes about an hour on 2 cores; opt in with EDGESAM_ALL_COREML=1"
    opt_in = pytest.mark.skipif(not ALL_COREML, reason=why)
    for v in list_variants():  # variant-major: the cached model serves both graphs
        for g in ("decoder", "encoder"):
            default = v not in HEAVY and v in (LIGHT_ENCODERS if g == "encoder" else DEFAULT_DECODERS)
            marks = [] if default else [pytest.mark.slow, opt_in]
            out.append(pytest.param(v, g, marks=marks, id=f"{v}-{g}"))
    return out


@pytest.mark.parametrize("variant, graph_name", _graph_params())
def test_graph_converts_fp16(models: dict, tmp_path: Path, variant: str, graph_name: str) -> None:
    spec = get_variant(variant)
    graph = graph_specs(spec)[graph_name]
    module = dict(get_model(models, variant).export_graphs())[graph_name]  # type: ignore[attr-defined]
    opts = cx.coreml_options("fp16")
    path = tmp_path / f"{graph_name}.mlpackage"
    facts = cx.export_coreml(module, graph, sample_feed(graph), path, spec, opts)
    saved = cx.read_package(path)  # coremltools.models.MLModel(path, skip_model_load=True)
    assert cx.check_package(saved, graph, opts) == []
    assert [f["name"] for f in saved["inputs"]] == graph.input_names
    assert [f["name"] for f in saved["outputs"]] == graph.output_names
    assert {f["dtype"] for f in saved["inputs"] + saved["outputs"]} == {"float32"}
    ranges = {f["name"]: f["ranges"] for f in saved["inputs"]}
    if graph_name == "decoder":
        n = [6, 6] if spec.decoder_kind == "efficient_sam" else [1, 16]
        assert ranges["point_coords"] == [[1, 64], n, [2, 2]]
        assert ranges["point_labels"] == [[1, 64], n]
        if spec.decoder_kind != "efficient_sam":
            assert ranges["mask_input"] == [[1, 64], [1, 1], [256, 256], [256, 256]]
            assert ranges["has_mask_input"] == [[1, 64]]
    else:
        s = spec.processing.input_size
        assert ranges["image"] == [[1, 1], [3, 3], [s, s], [s, s]]
    ops = saved["op_precisions"]
    assert not set(FP32_OP_TYPES) & set(ops["fp16"]), f"overflow-prone ops in fp16: {ops['fp16']}"
    assert ops["fp16"], "nothing runs in fp16"
    if graph_name == "decoder":
        assert DECODER_FP32 <= set(ops["fp32"])
    elif spec.family == "efficientvit_sam":  # ReLU linear attention: products and normalizer
        assert {"matmul", "real_div"} <= set(ops["fp32"])
    assert facts["coreml"]["op_precisions"] == ops
    assert saved["metadata"]["edgesam.variant"] == variant


def test_bicubic_lowering_is_exact() -> None:
    for n_in, n_out, align, scale in ((32, 64, False, 2.0), (16, 64, False, None), (7, 64, False, None),
                                      (5, 11, True, None)):
        x = torch.randn(1, 2, n_in, n_in, dtype=torch.float64)
        kw = {"scale_factor": scale} if scale else {"size": (n_out, n_out)}
        ref = torch.nn.functional.interpolate(x, mode="bicubic", align_corners=align, **kw)
        r = torch.from_numpy(bicubic_matrix(n_in, n_out, align, scale))
        assert (r @ x @ r.T - ref).abs().max() < 1e-12
        weights = _bicubic_weights(n_in, n_out, align, scale, torch.float32).numpy()
        assert np.abs(weights - bicubic_matrix(n_in, n_out, align, scale)).max() < 1e-6


def test_palettize_lut_and_int8(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 64)).astype(np.float32)
    lut, idx = cx._kmeans_lut(4)(w)
    assert lut.shape == (16,) and idx.dtype == np.uint8 and idx.max() < 16
    rms = float(np.sqrt(np.mean((lut[idx].reshape(w.shape) - w) ** 2)))
    assert rms < 0.12  # 16 k-means levels over N(0, 1): Lloyd-Max gives 0.097

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(64, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.lin(x), dim=-1)

    graph = GraphSpec("encoder", (TensorSpec("x", (1, 64)),), (TensorSpec("y", (1, 64)),))
    feed = {"x": np.ones((1, 64), np.float32)}
    import coremltools as ct

    for precision, options, op in (("fp16", {"palettize": 4}, "constexpr_lut_to_dense"),
                                   ("fp16", {"weights_int8": True}, "constexpr_affine_dequantize"),
                                   ("fp32", {"deployment_target": "iOS18"}, "softmax")):
        path = tmp_path / f"{op}.mlpackage"
        facts = cx.export_coreml(Tiny().eval(), graph, feed, path, get_variant(SMALL),
                                 cx.coreml_options(precision, options))
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        types = [o.type for f in spec.mlProgram.functions.values()
                 for o in f.block_specializations[f.opset].operations]
        assert op in types
        if precision == "fp32":  # nothing in fp16; iOS18 programs are spec version 9
            assert facts["coreml"]["op_precisions"]["fp16"] == {} and spec.specificationVersion == 9
        else:
            assert facts["coreml"]["compression"] != "none" and spec.specificationVersion == 8


def test_conversion_error_names_the_op(tmp_path: Path) -> None:
    class Unsupported(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.special.i0e(x)

    graph = GraphSpec("encoder", (TensorSpec("x", (1, 8)),), (TensorSpec("y", (1, 8)),))
    with pytest.raises(EdgeSamError, match=r"nanosam: Core ML export of the encoder graph failed in "
                                           r"coremltools conversion: .*special_i0e"):
        cx.export_coreml(Unsupported(), graph, {"x": np.ones((1, 8), np.float32)},
                         tmp_path / "u.mlpackage", get_variant(SMALL), cx.coreml_options("fp16"))


@pytest.mark.parametrize("precision, options, message", [
    ("int8", None, "precision 'int8'"),
    ("fp16", {"deployment_target": "iOS12"}, "deployment target"),
    ("fp16", {"weights_int8": True, "palettize": 4}, "one weight compression"),
    ("fp16", {"palettize": 5}, "--palettize takes"),
    ("fp16", {"max_points": 0}, "max_points"),
    ("fp16", {"bogus": 1}, "unknown Core ML options"),
])
def test_bad_options_write_nothing(tmp_path: Path, precision: str, options: dict | None,
                                   message: str) -> None:
    from edge_sam_sdk.exporters.export import export_bundle

    with pytest.raises(EdgeSamError, match=message):
        export_bundle(SMALL, "synthetic:0", tmp_path / "b", target="coreml", precision=precision,
                      target_options=options)
    with pytest.raises(EdgeSamError, match="do not apply to target 'onnx'"):
        export_bundle(SMALL, "synthetic:0", tmp_path / "c", target_options={"palettize": 4})
    assert list(tmp_path.iterdir()) == []


def test_missing_coremltools_fails_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_sam_sdk.exporters import export

    monkeypatch.setitem(sys.modules, "coremltools", None)  # import coremltools -> ImportError
    monkeypatch.setattr(export, "load_model", lambda *a: pytest.fail("work started before the check"))
    with pytest.raises(BackendNotAvailableError, match=r"pip install 'edgesam\[coreml\]'") as info:
        export.export_bundle(SMALL, "synthetic:0", tmp_path / "b", target="coreml", precision="fp16")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_conversion_failure_leaves_no_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_sam_sdk.exporters.export import export_bundle

    def fail(*_a: object) -> None:
        raise ValueError('Core ML only supports tensors with rank <= 5. Layer "view_3", with type '
                         '"reshape", outputs a rank 6 tensor.')

    monkeypatch.setattr(cx, "convert_program", fail)
    with pytest.raises(EdgeSamError, match=r"nanosam: Core ML export of the encoder graph failed in "
                                           r"coremltools conversion: ValueError: .*rank 6") as info:
        export_bundle(SMALL, "synthetic:0", tmp_path / "b", target="coreml", precision="fp16")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def coreml_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``edgesam export --target coreml --precision fp16 --weights-int8`` of the small variant."""
    from edge_sam_sdk.cli import main

    out = tmp_path_factory.mktemp("coreml") / "bundle"
    assert main(["export", "--variant", SMALL, "--checkpoint", "synthetic:0", "--target", "coreml",
                 "--precision", "fp16", "--weights-int8", "--max-points", "12", "--out", str(out)]) == 0
    return out


def test_bundle_manifest(coreml_bundle: Path) -> None:
    from edge_sam_sdk.bundle import read_manifest, verify_files

    m = read_manifest(coreml_bundle)
    verify_files(coreml_bundle, m)  # sha256 of each .mlpackage folder
    assert m["target"] == "coreml" and m["precision"] == "fp16"
    for name in ("encoder", "decoder"):
        g = m["graphs"][name]
        assert g["file"] == f"{name}.mlpackage" and (coreml_bundle / g["file"] / "Manifest.json").is_file()
        assert g["coreml"]["compression"] == "int8" and g["coreml"]["deployment_target"] == "iOS17"
        saved = cx.read_package(coreml_bundle / g["file"])
        assert [f["name"] for f in saved["inputs"]] == [t["name"] for t in g["inputs"]]
        assert [f["name"] for f in saved["outputs"]] == [t["name"] for t in g["outputs"]]
    assert m["graphs"]["decoder"]["coreml"]["shape_ranges"] == {"B": [1, 64], "N": [1, 12]}
    spec = get_variant(SMALL)
    for name in ("encoder", "decoder"):  # what Xcode shows
        saved = cx.read_package(coreml_bundle / f"{name}.mlpackage")
        meta = saved["metadata"]
        assert saved["license"] == spec.license and "edgesam" in saved["author"]
        assert "synthetic:0" in saved["author"] and SMALL in saved["description"]
        assert json.loads(meta["edgesam.processing"]) == m["processing"]
        assert json.loads(meta["edgesam.mask_selection"]) == m["graphs"]["decoder"]["extra"]["mask_selection"]
        assert meta["edgesam.graph"] == name and meta["edgesam.deployment_target"] == "iOS17"
        assert meta["edgesam.compression"] == "int8" and meta["edgesam.precision"] == "fp16"
        assert set(saved["input_description"]) == {t["name"] for t in m["graphs"][name]["inputs"]}
        assert all(saved["input_description"].values())
        ranges = json.loads(meta["edgesam.shape_ranges"])
        assert ranges == ({"B": [1, 64], "N": [1, 12]} if name == "decoder" else {})
    parity = m["export_parity"]
    assert parity["lowered_program"]["encoder"]["ok"] and parity["lowered_program"]["decoder"]["ok"]
    if sys.platform != "darwin":
        assert parity["measured"] is False and "macOS" in parity["why"]


@NOT_MACOS
def test_backend_refuses_off_macos(coreml_bundle: Path) -> None:
    from edge_sam_sdk.runtimes.coreml_backend import CoreMLBackend

    with pytest.raises(BackendNotAvailableError, match="only on macOS"):
        load_bundle(coreml_bundle)
    with pytest.raises(BackendNotAvailableError, match="only on macOS"):
        CoreMLBackend(coreml_bundle / "encoder.mlpackage")


def test_backend_shape_check() -> None:
    from edge_sam_sdk.errors import InputError
    from edge_sam_sdk.runtimes.coreml_backend import check_shape

    check_shape("point_coords", (2, 16, 2), [(1, 64), (1, 16), (2, 2)])
    with pytest.raises(InputError, match="point_coords axis 1 has size 17; this package takes 1..16"):
        check_shape("point_coords", (2, 17, 2), [(1, 64), (1, 16), (2, 2)])


@MACOS
def test_coreml_parity_on_macos(coreml_bundle: Path) -> None:
    """Core ML against torch on the sample feeds (run on a Mac: see docs/targets/coreml.md)."""
    import dataclasses

    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.exporters.export import graph_modules
    from edge_sam_sdk.exporters.parity import measure_parity

    bundle = load_bundle(coreml_bundle)
    spec = get_variant(SMALL)
    modules = graph_modules(load_model(spec, "synthetic:0"))
    for name, backend in (("encoder", bundle.encoder), ("decoder", bundle.decoder)):
        graph = dataclasses.replace(graph_specs(spec)[name], **cx.PARITY_BOUNDS["fp16"])
        figures = measure_parity(backend, modules[name], graph, sample_feed(graph))
        assert figures["ok"], figures


@MACOS
def test_coreml_predictor_on_macos(coreml_bundle: Path) -> None:
    from edge_sam_sdk import SamPredictor
    from edge_sam_sdk.errors import InputError
    from edge_sam_sdk.exporters.export import torch_bundle
    from edge_sam_sdk.visualize import demo_image

    image = demo_image()
    got, ref = SamPredictor(load_bundle(coreml_bundle)), SamPredictor(torch_bundle(SMALL, "synthetic:0"))
    got.set_image(image)
    ref.set_image(image)
    kw = {"point_coords": np.array([[300.0, 200.0]]), "point_labels": np.array([1]), "multimask_output": True}
    masks, scores, _ = got.predict(**kw)
    ref_masks, ref_scores, _ = ref.predict(**kw)
    inter = (masks & ref_masks).sum(axis=(1, 2))
    union = np.maximum((masks | ref_masks).sum(axis=(1, 2)), 1)
    assert (inter / union).min() > 0.95 and np.abs(scores - ref_scores).max() < 0.05
    with pytest.raises(InputError, match="this package takes"):
        got.predict(point_coords=np.zeros((13, 2)), point_labels=np.ones(13), multimask_output=False)
