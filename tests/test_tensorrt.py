"""TensorRT target (the readiness check is in test_tensorrt_readiness.py): the fail-fast errors
without TensorRT, calibration batching over real images, build options.

Building and running engines needs TensorRT, pycuda and an NVIDIA GPU: those tests are
skipped (with the reason) where they are absent, as on the project's CI machines.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED, get_bundle
from edge_sam_sdk import BackendNotAvailableError, EdgeSamError, InputError
from edge_sam_sdk.graphs import graph_specs, sample_feed
from edge_sam_sdk.registry import get_variant

onnx = pytest.importorskip("onnx")

from edge_sam_sdk.exporters.calibration import CalibrationStream, ImageBatcher, image_files  # noqa: E402
from edge_sam_sdk.exporters.targets.tensorrt.engine import (  # noqa: E402
    TensorRTOptions,
    build_engine,
    require_tensorrt,
    trtexec_args,
    write_trtexec_script,
)
from edge_sam_sdk.exporters.targets.tensorrt.readiness import (  # noqa: E402
    fp32_node_names,
)


def _tensorrt_gpu() -> str | None:
    """Why TensorRT tests cannot run here, or None when they can."""
    try:
        require_tensorrt()
    except EdgeSamError as exc:
        return str(exc)
    return None


NO_TRT = _tensorrt_gpu()
needs_trt = pytest.mark.skipif(NO_TRT is not None, reason=f"needs TensorRT, pycuda and a GPU: {NO_TRT}")
HAS_TRT_PACKAGES = all(importlib.util.find_spec(m) for m in ("tensorrt", "pycuda"))
SMALL = "mobile_sam"




# --------------------------------------------------------------------- fail fast, errors


@pytest.mark.skipif(HAS_TRT_PACKAGES, reason="tensorrt and pycuda are installed here")
def test_cli_export_tensorrt_fails_fast_without_tensorrt(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "edge_sam_sdk.cli", "export", "--variant", SMALL,
                        "--checkpoint", "synthetic:0", "--target", "tensorrt", "--precision", "fp16",
                        "--out", str(tmp_path / "trt")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("edgesam: error: target tensorrt needs the packages tensorrt and pycuda")
    assert "not found: tensorrt" in lines[0] and "pip install 'edgesam[tensorrt]'" in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(HAS_TRT_PACKAGES, reason="tensorrt and pycuda are installed here")
def test_export_tensorrt_checks_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_sam_sdk.exporters import export

    def no_build(*_args: object) -> None:
        raise AssertionError("the model was built before the TensorRT check")

    monkeypatch.setattr(export, "load_model", no_build)
    with pytest.raises(EdgeSamError, match=r"not found: tensorrt, pycuda\)"):
        export.export_bundle(SMALL, "synthetic:0", tmp_path / "b", target="tensorrt")
    assert list(tmp_path.iterdir()) == []


def test_cli_tensorrt_options_need_the_tensorrt_target(tmp_path: Path) -> None:
    from edge_sam_sdk.cli import main

    assert main(["export", "--variant", SMALL, "--checkpoint", "synthetic:0", "--max-points", "4",
                 "--out", str(tmp_path / "b")]) == 1
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif(HAS_TRT_PACKAGES, reason="tensorrt and pycuda are installed here")
def test_runtime_backend_names_the_missing_package(tmp_path: Path) -> None:
    from edge_sam_sdk.runtimes import backend_class, open_graph

    with pytest.raises(BackendNotAvailableError, match=r"needs the packages? 'tensorrt'.*"
                       r"pip install 'edgesam\[tensorrt\]' \(on Jetson use the JetPack TensorRT\)"):
        backend_class("tensorrt")
    (tmp_path / "decoder.engine").write_bytes(b"not an engine")
    with pytest.raises(BackendNotAvailableError, match="tensorrt"):
        open_graph(tmp_path / "decoder.engine")  # chosen by the .engine suffix


def test_load_tensorrt_bundle_without_tensorrt(onnx_bundles: dict, tmp_path: Path) -> None:
    """A tensorrt bundle opened where TensorRT is absent: the backend error, not a traceback."""
    import shutil

    from edge_sam_sdk import load_bundle

    if HAS_TRT_PACKAGES:
        pytest.skip("tensorrt and pycuda are installed here")
    bundle = tmp_path / "b"
    shutil.copytree(get_bundle(onnx_bundles, SMALL), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["target"] = "tensorrt"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackendNotAvailableError, match="edgesam\\[tensorrt\\]"):
        load_bundle(bundle)


def test_engine_compatibility_rules() -> None:
    from edge_sam_sdk.runtimes.tensorrt_backend import compatibility_problem

    built = {"version": "8.6.2", "gpu": {"name": "Orin", "compute_capability": "8.7"}}
    assert compatibility_problem(built, built) is None
    assert compatibility_problem(None, built) is None
    other_trt = built | {"version": "10.3.0"}
    assert "TensorRT 8.6.2 (here 10.3.0)" in str(compatibility_problem(built, other_trt))
    other_gpu = {"version": "8.6.2", "gpu": {"name": "Xavier", "compute_capability": "7.2"}}
    problem = str(compatibility_problem(built, other_gpu))
    assert "compute capability 8.7 (here 7.2)" in problem and "'Orin' (here 'Xavier')" in problem
    same_sm = {"version": "8.6.2", "gpu": {"name": "Orin Nano", "compute_capability": "8.7"}}
    assert compatibility_problem(built, same_sm) is not None
    assert compatibility_problem(built, same_sm, allow_other_gpu=True) is None


# ------------------------------------------------------------------------- calibration


def _check_batches(folder: Path, batch_size: int, limit: int | None = None) -> list[Path]:
    from edge_sam_sdk.processing import preprocess
    from edge_sam_sdk.visualize import load_image

    spec = get_variant(SMALL).processing
    batcher = ImageBatcher(folder, spec, batch_size=batch_size, limit=limit)
    files = image_files(folder, limit)
    batches = list(batcher)
    assert len(batches) == len(batcher) == len(files) // batch_size
    for b, batch in enumerate(batches):
        assert batch.shape == (batch_size, 3, 1024, 1024) and batch.dtype == np.float32
        assert batch.flags["C_CONTIGUOUS"] and batch.nbytes == batcher.nbytes
        for i in range(batch_size):
            expected = preprocess(load_image(files[b * batch_size + i]), spec)[0][0]
            np.testing.assert_array_equal(batch[i], expected)
    return files


def test_calibration_batches_over_shared_images() -> None:
    folder = SHARED / "images"
    if not folder.is_dir() or not list(folder.glob("*.jpg")):
        pytest.skip(f"{folder} holds no .jpg: the real-photo calibration check needs ../shared/images "
                    "(it belongs to another repository and is not committed here)")
    files = _check_batches(folder, 1)
    assert [f.suffix for f in files] == [".jpg"] * len(list(folder.glob("*.jpg")))


def test_calibration_batches_over_generated_images(tmp_path: Path) -> None:
    from edge_sam_sdk.visualize import demo_image, save_png

    for i, (h, w) in enumerate([(600, 900), (900, 600), (480, 480), (300, 1000), (700, 500)]):
        save_png(demo_image(h, w), tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    assert len(_check_batches(tmp_path, 2)) == 5  # 2 batches of 2; the fifth image is left out
    _check_batches(tmp_path, 1, limit=3)
    feeds = list(ImageBatcher(tmp_path, get_variant(SMALL).processing, batch_size=5).feeds())
    assert len(feeds) == 1 and feeds[0]["image"].shape == (5, 3, 1024, 1024)


def test_calibration_stream_serves_each_batch_once_and_caches(tmp_path: Path) -> None:
    from edge_sam_sdk.visualize import demo_image, save_png

    for i in range(3):
        save_png(demo_image(200 + 10 * i, 300), tmp_path / "img" / f"{i}.png")
    cache = tmp_path / "calibration.cache"
    stream = CalibrationStream(ImageBatcher(tmp_path / "img", get_variant(SMALL).processing), cache)
    assert stream.read_cache() is None
    served = [stream.next_batch() for _ in range(4)]
    assert [b is None for b in served] == [False, False, False, True] and stream.served == 3
    stream.write_cache(b"TRT-8601-EntropyCalibration2\n")
    assert CalibrationStream(None, cache).read_cache() == b"TRT-8601-EntropyCalibration2\n"
    assert CalibrationStream(None, cache).next_batch() is None


def test_calibration_errors(tmp_path: Path) -> None:
    spec = get_variant(SMALL).processing
    with pytest.raises(InputError, match="calibration image folder not found"):
        ImageBatcher(tmp_path / "nope", spec)
    with pytest.raises(InputError, match="no calibration images"):
        ImageBatcher(tmp_path, spec)
    from edge_sam_sdk.visualize import demo_image, save_png

    save_png(demo_image(100, 100), tmp_path / "a.png")
    with pytest.raises(InputError, match="fewer than one batch of 2"):
        ImageBatcher(tmp_path, spec, batch_size=2)


# ----------------------------------------------------------------------- build options


def test_profiles_follow_the_graph_specs() -> None:
    opts = TensorRTOptions(max_points=10, max_prompts=4)
    sam = graph_specs(get_variant(SMALL))
    assert opts.profile(sam["encoder"]) == {}
    assert opts.profile(sam["decoder"]) == {
        "point_coords": [[1, 1, 2], [1, 2, 2], [4, 10, 2]], "point_labels": [[1, 1], [1, 2], [4, 10]],
        "mask_input": [[1, 1, 256, 256], [1, 1, 256, 256], [4, 1, 256, 256]],
        "has_mask_input": [[1], [1], [4]]}
    esam = opts.profile(graph_specs(get_variant("efficient_sam_vitt"))["decoder"])
    assert esam["point_coords"] == [[1, 6, 2], [1, 6, 2], [4, 6, 2]]  # 6 points, fixed
    sam2 = opts.profile(graph_specs(get_variant("sam2_1_hiera_tiny"))["decoder"])
    assert "high_res_feats_0" not in sam2 and sam2["point_labels"][2] == [4, 10]
    assert opts.feed_dims() == {"batch": 2, "points": 3}
    assert TensorRTOptions(max_points=1, max_prompts=1).feed_dims() == {"batch": 1, "points": 1}


def test_precision_per_graph_and_parity_bounds() -> None:
    specs = graph_specs(get_variant(SMALL))
    int8 = TensorRTOptions(precision="int8")
    assert (int8.graph_precision("encoder"), int8.graph_precision("decoder")) == ("int8", "fp16")
    assert TensorRTOptions().parity_specs(specs) == specs
    fp16 = TensorRTOptions(precision="fp16").parity_specs(specs)
    assert fp16["decoder"].rel_l2 == 0.05 and fp16["decoder"].max_abs == 0.1


def test_option_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="precision 'int4'"):
        TensorRTOptions(precision="int4").validate()
    with pytest.raises(InputError, match="max-points must be >= 1"):
        TensorRTOptions(max_points=0).validate()
    with pytest.raises(InputError, match="needs --calibration-images"):
        TensorRTOptions(precision="int8").validate()
    with pytest.raises(InputError, match="calibration image folder not found"):
        TensorRTOptions(precision="int8", calibration_images=str(tmp_path / "none")).validate()
    with pytest.raises(InputError, match="apply to --precision int8"):
        TensorRTOptions(precision="fp16", calibration_images=str(tmp_path)).validate()
    cache = tmp_path / "c.cache"
    cache.write_bytes(b"x")
    assert TensorRTOptions(precision="int8", calibration_cache=str(cache)).validate()


def test_trtexec_lines(tmp_path: Path) -> None:
    profile = TensorRTOptions(max_points=8, max_prompts=2).profile(graph_specs(get_variant(SMALL))["decoder"])
    args = trtexec_args("decoder.onnx", "decoder.engine", profile, "fp16", ["/a/Softmax", "/b:c"], 512, None)
    assert args[:5] == ["trtexec", "--onnx=decoder.onnx", "--saveEngine=decoder.engine",
                        "--memPoolSize=workspace:512", "--skipInference"]
    assert "--minShapes=point_coords:1x1x2,point_labels:1x1,mask_input:1x1x256x256,has_mask_input:1" in args
    assert "--maxShapes=point_coords:2x8x2,point_labels:2x8,mask_input:2x1x256x256,has_mask_input:2" in args
    assert "--fp16" in args and "--precisionConstraints=obey" in args
    assert "--layerPrecisions=/a/Softmax:fp32" in args  # a name with ':' cannot be written
    int8 = trtexec_args("encoder.onnx", "encoder.engine", {}, "int8", [], 1024, "calibration.cache")
    assert "--int8" in int8 and "--calib=calibration.cache" in int8
    assert not any(a.startswith("--minShapes") for a in int8) and "--noTF32" not in int8
    assert "--noTF32" in trtexec_args("e.onnx", "e.engine", {}, "fp32", [], 1024, None)  # fp32 means fp32
    name = write_trtexec_script(tmp_path, {"encoder": int8, "decoder": args})
    text = (tmp_path / name).read_text()
    assert text.startswith("#!/bin/sh") and text.count('"$TRTEXEC" --onnx=') == 2
    assert subprocess.run(["sh", "-n", str(tmp_path / name)]).returncode == 0


@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_bundle_matches_onnx(precision: str, onnx_bundles: dict, tmp_path: Path) -> None:
    """Build, load and run a TensorRT bundle; masks agree with the ONNX bundle's."""
    from edge_sam_sdk import SamPredictor, load_bundle
    from edge_sam_sdk.exporters.export import export_bundle
    from edge_sam_sdk.visualize import demo_image

    path = export_bundle(SMALL, "synthetic:0", tmp_path / "trt", target="tensorrt", precision=precision,
                         tensorrt={"max_points": 8, "max_prompts": 4})
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["tensorrt"]["gpu"]["compute_capability"] and (path / "trtexec.sh").exists()
    image = demo_image()
    results = []
    for bundle in (load_bundle(get_bundle(onnx_bundles, SMALL)), load_bundle(path)):
        p = SamPredictor(bundle)
        p.set_image(image)
        results.append(p.predict(point_coords=np.array([[270, 330]]), point_labels=np.array([1])))
    inter = np.logical_and(results[0][0], results[1][0]).sum()
    union = np.logical_or(results[0][0], results[1][0]).sum()
    assert inter / max(union, 1) >= (0.99 if precision == "fp32" else 0.9)



# ----------------------------------------------- our TensorRT code paths with a stand-in
# tests/fake_tensorrt.py mirrors the TensorRT/pycuda API we call and runs engines with
# onnxruntime: it checks our flow (profiles, pinned layers, calibration, buffers, manifest,
# refusal, adopt), not TensorRT.


def test_tensorrt_flow_with_a_stand_in(onnx_bundles: dict, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import fake_tensorrt as fake

    from edge_sam_sdk import BundleError, SamPredictor, load_bundle
    from edge_sam_sdk.cli import main
    from edge_sam_sdk.exporters.export import export_bundle
    from edge_sam_sdk.visualize import demo_image, save_png

    trt = fake.install(monkeypatch)
    path = export_bundle(SMALL, "synthetic:0", tmp_path / "trt", target="tensorrt", precision="fp16",
                         tensorrt={"max_points": 8, "max_prompts": 4})
    assert sorted(p.name for p in path.iterdir()) == ["decoder.engine", "decoder.onnx", "encoder.engine",
                                                      "encoder.onnx", "manifest.json", "trtexec.sh"]
    m = json.loads((path / "manifest.json").read_text())
    assert m["target"] == "tensorrt" and m["precision"] == "fp16"
    assert m["tensorrt"]["version"] == "10.3.0"
    assert m["tensorrt"]["gpu"] == {"name": "Fake GPU", "compute_capability": "8.7"}
    dec = m["graphs"]["decoder"]
    assert dec["file"] == "decoder.engine" and dec["data_files"][0]["file"] == "decoder.onnx"
    assert dec["profile"]["point_coords"] == [[1, 1, 2], [1, 2, 2], [4, 8, 2]]
    encoder_build, decoder_build = fake.Builder.built
    assert decoder_build["profile"] == dec["profile"] and encoder_build["profile"] == {}
    assert {trt.BuilderFlag.FP16, trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS} <= set(encoder_build["flags"])
    assert encoder_build["pinned"] == fp32_node_names(onnx.load(str(path / "encoder.onnx")))
    assert m["graphs"]["encoder"]["fp32_layers"] == len(encoder_build["pinned"]) > 0
    assert "--optShapes=point_coords:1x2x2" in (path / "trtexec.sh").read_text()

    image = demo_image()
    predictors = [SamPredictor(load_bundle(get_bundle(onnx_bundles, SMALL))), SamPredictor(load_bundle(path))]
    assert type(predictors[1].bundle.decoder).__name__ == "TensorRTBackend"
    got = []
    for p in predictors:
        p.set_image(image)
        got.append(p.predict(point_coords=np.array([[270, 330], [500, 200]]), point_labels=np.array([1, 0]),
                             multimask_output=True))
        got.append(p.predict_batch(boxes=np.array([[160, 230, 420, 450], [0, 0, 300, 300], [5, 5, 50, 60]])))
    for ref, trt_out in zip(got[:2], got[2:], strict=True):
        # Two exports of the same math: logits agree to float rounding, so a mask pixel whose
        # logit sits at the threshold may flip (seen: 1 of 1.6 M).
        np.testing.assert_allclose(ref[2], trt_out[2], atol=1e-4)
        assert np.mean(ref[0] != trt_out[0]) < 1e-5
        np.testing.assert_allclose(ref[1], trt_out[1], atol=1e-5)
    with pytest.raises(InputError, match="profile takes"):
        predictors[1].predict(point_coords=np.zeros((9, 2)), point_labels=np.ones(9))
    save_png(image, tmp_path / "img.png")
    assert main(["predict", str(path), "--image", str(tmp_path / "img.png"), "--point", "270,330,1",
                 "--threads", "2", "--out", str(tmp_path / "ov.png")]) == 0

    monkeypatch.setattr(trt, "__version__", "10.4.0")  # another machine's TensorRT
    with pytest.raises(BundleError, match=r"TensorRT 10\.3\.0 \(here 10\.4\.0\).*trtexec\.sh"):
        load_bundle(path)
    assert main(["trt-adopt", str(path)]) == 1  # the old engines do not deserialize here
    for name in ("encoder", "decoder"):
        fake.restamp(path / f"{name}.engine", "10.4.0")  # what trtexec.sh does on the device
    assert main(["trt-adopt", str(path)]) == 0
    assert json.loads((path / "manifest.json").read_text())["tensorrt"]["rebuilt"] is True
    feed = sample_feed(graph_specs(get_variant(SMALL))["decoder"])
    assert load_bundle(path).decoder.run(feed)["iou_predictions"].shape == (2, 4)


def test_int8_calibration_with_a_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fake_pycuda
    import fake_tensorrt as fake

    from edge_sam_sdk.exporters.export import export_bundle
    from edge_sam_sdk.visualize import demo_image, save_png

    fake.install(monkeypatch)
    spec = get_variant(SMALL).processing
    for i in range(3):
        save_png(demo_image(400 + 50 * i, 600), tmp_path / "images" / f"{i}.png")
    path = export_bundle(SMALL, "synthetic:0", tmp_path / "int8", target="tensorrt", precision="int8",
                         tensorrt={"calibration_images": str(tmp_path / "images")})
    encoder_build, decoder_build = fake.Builder.built
    int8 = fake.BuilderFlag.INT8
    assert int8 in encoder_build["flags"] and encoder_build["calibrated_batches"] == 3
    assert int8 not in decoder_build["flags"]  # the decoder takes prompts, not images: fp16
    m = json.loads((path / "manifest.json").read_text())
    assert m["tensorrt"]["calibration_cache"] == "calibration.cache"
    assert (path / "calibration.cache").read_bytes() == b"TRT-FAKE-EntropyCalibration2\n"
    assert [m["graphs"][g]["engine_precision"] for g in ("encoder", "decoder")] == ["int8", "fp16"]
    assert "--int8 --calib=calibration.cache" in (path / "trtexec.sh").read_text()

    fake.Builder.built.clear()  # an existing cache wins over the images: no calibration batches
    options = TensorRTOptions(precision="int8", calibration_images=str(tmp_path / "images"),
                              calibration_cache=str(path / "calibration.cache"), processing=spec).validate()
    blocks = set(fake_pycuda.DeviceMemory.blocks)
    build_engine(path / "encoder.onnx", tmp_path / "again.engine", {}, "int8", [], options,
                 path / "calibration.cache")
    assert fake.Builder.built[0]["calibrated_batches"] == 0 and (tmp_path / "again.engine").exists()
    assert set(fake_pycuda.DeviceMemory.blocks) == blocks  # the calibrator's device buffer was freed
