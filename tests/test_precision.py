"""Reduced precision (issue 9): fp16 and int8 ONNX bundles, the bimodal fix, the quality report.

One fp16 and one int8 MobileSAM bundle are exported per module (synthetic weights, small
calibration settings to keep the file short) and shared by the tests. Speed is reported,
never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from conftest import TRUCK  # noqa: E402
from edge_sam_sdk.bundle import Bundle, load_bundle  # noqa: E402
from edge_sam_sdk.cli import main  # noqa: E402
from edge_sam_sdk.errors import EdgeSamError  # noqa: E402
from edge_sam_sdk.exporters.calibration import default_scenes  # noqa: E402
from edge_sam_sdk.exporters.export import export_bundle  # noqa: E402
from edge_sam_sdk.exporters.quality import BARS, format_report, quality_report  # noqa: E402
from edge_sam_sdk.exporters.targets.onnx.quantization import FP16_KEEP_OPS, Int8Config  # noqa: E402
from edge_sam_sdk.visualize import demo_image, load_image, save_png  # noqa: E402

SMALL = "mobile_sam"
QUALITY_FIELDS = ("precision", "reference_precision", "images", "mask_iou_min", "mask_iou_mean",
                  "embedding_rel_l2_max", "latency", "bar", "judgeable", "meets_bar", "note")


def _quality_images() -> list[tuple[str, np.ndarray]]:
    return [("truck.jpg", load_image(TRUCK))] if TRUCK.exists() else []


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    for name, image in default_scenes(2):
        save_png(image, folder / f"{name}.png")
    (folder / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    return folder


@pytest.fixture(scope="module")
def fp16_bundle(tmp_path_factory: pytest.TempPathFactory, calib_dir: Path) -> Path:
    return export_bundle(SMALL, "synthetic:0", tmp_path_factory.mktemp("p") / "fp16", precision="fp16",
                         calibration_images=calib_dir, quality_images=_quality_images())


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory, calib_dir: Path) -> Path:
    return export_bundle(SMALL, "synthetic:0", tmp_path_factory.mktemp("p") / "int8", precision="int8",
                         calibration_images=calib_dir, int8=Int8Config(groups=2),
                         quality_images=_quality_images())


def _value_types(model: Any) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    out = {vi.name: vi.type.tensor_type.elem_type for vi in
           list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    out.update({i.name: i.data_type for i in model.graph.initializer})
    return out


def test_fp16_graph_keeps_blocked_ops_and_io_fp32(fp16_bundle: Path) -> None:
    for graph in ("encoder", "decoder"):
        model = onnx.load(str(fp16_bundle / f"{graph}.onnx"))
        f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
        io = list(model.graph.input) + list(model.graph.output)
        assert all(t.type.tensor_type.elem_type == f32 for t in io)
        types = _value_types(model)
        assert any(i.data_type == f16 for i in model.graph.initializer), "no fp16 weights"
        blocked = [n for n in model.graph.node if n.op_type in FP16_KEEP_OPS]
        assert blocked, graph
        for node in blocked:
            assert types.get(node.input[0]) == f32, (graph, node.name)
    manifest = load_bundle(fp16_bundle).manifest
    assert manifest["precision"] == "fp16"
    assert {manifest["graphs"][g]["precision"] for g in ("encoder", "decoder")} == {"fp16"}


def test_int8_graph_is_qdq_with_per_channel_weights(int8_bundle: Path) -> None:
    model = onnx.load(str(int8_bundle / "encoder.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert not any(op.startswith("QLinear") or op.endswith("Integer") for op in ops)  # QDQ, not QOperator
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
               and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim >= 2]
    assert weights, "no int8 weight initializers"
    for dq in weights:  # per output channel: Conv/Gemm weights on axis 0, MatMul's B on axis 1
        scale, axis = inits[dq.input[1]], next((a.i for a in dq.attribute if a.name == "axis"), 1)
        assert scale.ndim == 1 and scale.size == inits[dq.input[0]].shape[axis] > 1, dq.name
        assert not np.any(inits[dq.input[2]]) if len(dq.input) > 2 else True  # symmetric weights
    assert all(t.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for t in model.graph.input)
    decoder = onnx.load(str(int8_bundle / "decoder.onnx"))
    assert "QuantizeLinear" not in [n.op_type for n in decoder.graph.node]  # the decoder stays fp32
    manifest = load_bundle(int8_bundle).manifest
    assert manifest["graphs"]["encoder"]["precision"] == "int8"
    assert manifest["graphs"]["decoder"]["precision"] == "fp32"
    facts = manifest["graphs"]["encoder"]["reduced"]
    assert facts["format"] == "QDQ" and facts["scheme"] == "u8s8" and facts["quantized_nodes"] > 0
    groups = facts["selection"]["groups"]
    assert len(groups) >= 2 and all(g["error"] >= 0 for g in groups)


def test_manifest_records_calibration_and_parity(int8_bundle: Path, calib_dir: Path) -> None:
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    cal = manifest["calibration"]
    assert cal["source"] == str(calib_dir) and cal["images"] == 2
    assert cal["calibration_names"] == ["scene_01.png", "scene_02.png"]
    assert cal["held_out"] == ["demo_image"]
    fix = cal["bimodal_fix"]
    assert fix["enabled"] and fix["applicable"] and fix["sites"] == 10
    assert set(fix["blocks"]) and all("noise_ratio" in b for b in fix["blocks"].values())
    assert all(manifest["fp32_export_parity"][g]["ok"] for g in ("encoder", "decoder"))
    assert all(manifest["export_parity"][g]["ok"] is None for g in ("encoder", "decoder"))


@pytest.mark.parametrize("which", ["fp16", "int8"])
def test_quality_report_meets_bars(which: str, fp16_bundle: Path, int8_bundle: Path) -> None:
    quality = load_bundle(fp16_bundle if which == "fp16" else int8_bundle).manifest["quality"]
    assert all(k in quality for k in QUALITY_FIELDS)
    names = [r["name"] for r in quality["images"]]
    assert names == ["truck.jpg", "demo_image"] if TRUCK.exists() else names == ["demo_image"]
    for row in quality["images"]:
        assert set(row["cases"]) == {"point", "two_points", "box"}
        assert 0 <= row["embedding_rel_l2"] < 0.2
    assert quality["judgeable"] and quality["bar"] == {"mask_iou_min": BARS[which]}
    assert quality["mask_iou_min"] >= BARS[which] and quality["meets_bar"] is True
    lat = quality["latency"]
    assert lat["encoder_ms"] > 0 and lat["encoder_latency_ratio"] == pytest.approx(
        lat["encoder_ms"] / lat["reference_encoder_ms"])
    print(format_report(quality))


def test_report_cannot_judge_repvit_with_synthetic_weights(fp16_bundle: Path) -> None:
    b = load_bundle(fp16_bundle)
    fake = Bundle(dict(b.manifest, variant="edge_sam"), b.encoder, b.decoder)
    report = quality_report(b, fake, [("demo", demo_image(300, 400))], latency_runs=0)
    assert report["judgeable"] is False and report["meets_bar"] is None and report["latency"] is None
    assert "cannot judge" in report["note"] and "cannot judge" in format_report(report)


def _inject_bimodal_keys(encoder: Any, offset: float = 5.0) -> None:
    """Give every key channel a large offset of alternating sign: PTQ4SAM's bimodal keys."""
    from edge_sam_sdk.exporters.targets.onnx.bimodal import find_sites

    with torch.no_grad():
        for site in find_sites(encoder):
            rows = site.rows(1)
            signs = torch.where(torch.arange(rows.shape[1]) % 2 == 0, 1.0, -1.0)
            site.qkv.bias[rows.reshape(-1)] += (offset * signs).repeat(rows.shape[0])


def _encoder(kind: str) -> tuple[Any, Any]:
    """(encoder module, processing spec): MobileSAM's TinyViT, or a small SAM ViT (rel-pos
    tables, windowed and global blocks) with synthetic weights and a 256 px input."""
    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.exporters.export import graph_modules
    from edge_sam_sdk.exporters.models.sam_vit import ImageEncoderViT
    from edge_sam_sdk.processing import ProcessingSpec
    from edge_sam_sdk.registry import get_variant
    from edge_sam_sdk.testing import synthetic_state_dict

    if kind == "tiny_vit":
        spec = get_variant("mobile_sam")
        return graph_modules(load_model(spec, "synthetic:0"))["encoder"], spec.processing
    vit = ImageEncoderViT(embed_dim=96, depth=2, num_heads=4, global_attn_indexes=(1,), img_size=256,
                          window_size=7)
    state = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
             for k, v in synthetic_state_dict(vit.state_dict(), 0).items()}
    vit.load_state_dict(state)
    return vit.eval(), ProcessingSpec(input_size=256)


def _embeddings(out: Any) -> np.ndarray:
    """The image embeddings of an encoder graph's output (SAM's graph also returns the
    decoder's per-image projections)."""
    return (out[0] if isinstance(out, tuple) else out).numpy()


@pytest.mark.parametrize("kind", ["tiny_vit", "sam_vit"])
def test_bimodal_flip_keeps_float_outputs(kind: str) -> None:
    from edge_sam_sdk.exporters.targets.onnx.bimodal import bimodal_fix
    from edge_sam_sdk.graphs import GraphSpec, TensorSpec, parity, parity_ok
    from edge_sam_sdk.processing import preprocess
    from edge_sam_sdk.testing import synthetic_array

    encoder, processing = _encoder(kind)
    _inject_bimodal_keys(encoder)
    s = processing.input_size
    image = torch.from_numpy(synthetic_array(0xE1, (1, 3, s, s), 0, -2.2, 2.7))
    with torch.no_grad():
        before = _embeddings(encoder(image))
    calib = [preprocess(default_scenes(1, ((256, 320),))[0][1], processing)[0]]
    assert bimodal_fix(encoder, calib, symmetric=True)["applied"] == 0  # symmetric: range unchanged
    report = bimodal_fix(encoder, calib)
    assert report["sites"] > 0 and report["applied"] >= report["sites"] / 2, report
    flipped = [b for b in report["blocks"].values() if b["flipped"]]
    assert all(b["noise_ratio"] < 0.9 and b["key_range"][1] < b["key_range"][0] for b in flipped)
    with torch.no_grad():
        after = _embeddings(encoder(image))
    figures = parity(before, after)
    bound = GraphSpec("encoder", (), (TensorSpec("image_embeddings", ()),))  # the graph-parity bound
    assert parity_ok(figures, bound), figures
    print(kind, report["applied"], report["sites"], report["flipped_channels"], figures)


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "fp64"}, "unknown precision 'fp64'"),
    ({"precision": "int8", "int8": Int8Config(scheme="u4")}, "unknown int8 scheme"),
    ({"precision": "int8", "calibration_images": "{empty}"}, "no readable calibration images"),
    ({"precision": "fp16", "calibration_images": "{missing}"}, "calibration image folder not found"),
])
def test_bad_requests_leave_nothing(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "broken.jpg").write_bytes(b"not a jpeg")
    kwargs = {k: (v.format(empty=tmp_path / "empty", missing=tmp_path / "nope") if isinstance(v, str)
                  and k == "calibration_images" else v) for k, v in kwargs.items()}
    out = tmp_path / "bundles" / "b"
    with pytest.raises(EdgeSamError, match=message):
        export_bundle(SMALL, "synthetic:0", out, **kwargs)
    assert not out.exists() and not (tmp_path / "bundles").exists()


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    empty = str(tmp_path / "empty")
    for extra in (["--precision", "bf16"], ["--precision", "int8", "--calibration-images", empty]):
        assert main(["export", "--variant", SMALL, "--checkpoint", "synthetic:0",
                     "--out", str(tmp_path / "x"), *extra]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("edgesam: error:") and "Traceback" not in "".join(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_cli_verify_prints_quality_of_reduced_bundle(fp16_bundle: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(fp16_bundle), "--checkpoint", "synthetic:0"]) == 0
    out = capsys.readouterr().out
    assert "quality of fp16 vs fp32" in out and "meets the fp16 bar" in out
    assert "info" in out and "PASS" in out
