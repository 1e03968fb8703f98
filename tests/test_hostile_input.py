"""Hostile and careless input: bundles stay confined, graphs are checked, limits hold, nothing
silently wrong, and the CLI answers one line before any work (issue 21)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import get_bundle
from edge_sam_sdk import BundleError, InputError, SamPredictor, load_bundle
from edge_sam_sdk.bundle import sha256_file, sha256_tree
from edge_sam_sdk.cli import main
from edge_sam_sdk.errors import GraphOutputError
from edge_sam_sdk.visualize import demo_image, load_image, save_png

SMALL = "mobile_sam"


@pytest.fixture()
def bundle(onnx_bundles: dict, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle" / "b"
    shutil.copytree(get_bundle(onnx_bundles, SMALL), dst)
    return dst


@pytest.fixture(scope="module")
def predictor(onnx_bundles: dict) -> SamPredictor:
    return SamPredictor(load_bundle(get_bundle(onnx_bundles, SMALL)))


def edit(folder: Path, change: object) -> None:
    m = json.loads((folder / "manifest.json").read_text())
    change(m)  # type: ignore[operator]
    (folder / "manifest.json").write_text(json.dumps(m))


# ------------------------------------------------------------------ confinement


@pytest.mark.parametrize("file", ["../../../../etc/passwd", "/etc/passwd", "../../../../../../etc",
                                  "a/../../decoder.onnx", "C:/x.onnx", "dec\\oder.onnx", "",
                                  "./decoder.onnx"])
def test_graph_file_must_be_a_plain_relative_path(bundle: Path, file: str) -> None:
    edit(bundle, lambda m: m["graphs"]["decoder"].update(file=file))
    with pytest.raises(BundleError, match=r"graphs\.decoder\.file"):
        load_bundle(bundle)
    edit(bundle, lambda m: m["graphs"]["decoder"].update(file="decoder.onnx", data_files=[
        {"file": file, "sha256": "0" * 64}]))
    with pytest.raises(BundleError, match=r"graphs\.decoder\.data_files\.0\.file"):
        load_bundle(bundle, verify=False)


def test_folder_where_a_file_is_expected(bundle: Path) -> None:
    (bundle / "sub").mkdir()
    (bundle / "sub" / "x").write_bytes(b"x")
    edit(bundle, lambda m: m["graphs"]["decoder"].update(file="sub"))
    with pytest.raises(BundleError, match="'sub' is a folder, expected a file"):
        load_bundle(bundle, verify=False)


def test_symlink_out_of_the_bundle_is_refused_even_with_a_matching_sha(bundle: Path) -> None:
    outside = bundle.parent / "outside.onnx"
    shutil.copy(bundle / "decoder.onnx", outside)
    digest = sha256_file(outside)
    (bundle / "decoder.onnx").unlink()
    (bundle / "decoder.onnx").symlink_to(outside)
    for verify in (True, False):
        with pytest.raises(BundleError, match="leads outside the bundle") as exc:
            load_bundle(bundle, verify=verify)
        assert digest[:8] not in str(exc.value)
    (bundle / "manifest.json").rename(bundle.parent / "m.json")
    (bundle / "manifest.json").symlink_to(bundle.parent / "m.json")
    with pytest.raises(BundleError, match="leads outside"):
        load_bundle(bundle)


def test_symlink_inside_the_bundle_is_fine(bundle: Path) -> None:
    (bundle / "graphs").mkdir()
    (bundle / "decoder.onnx").rename(bundle / "graphs" / "decoder.onnx")
    (bundle / "decoder.onnx").symlink_to(Path("graphs") / "decoder.onnx")
    assert load_bundle(bundle).decoder.inputs


def test_mlpackage_folders_are_confined_too(bundle: Path, tmp_path: Path) -> None:
    from edge_sam_sdk.bundle import verify_files

    pkg = bundle / "decoder.mlpackage"
    (pkg / "Data").mkdir(parents=True)
    (pkg / "Data" / "weights.bin").write_bytes(b"w" * 10)
    (pkg / "Manifest.json").write_text("{}")

    def coreml(m: dict) -> None:
        m["target"] = "coreml"
        for g in ("encoder", "decoder"):
            m["graphs"][g].update(file=f"{g}.mlpackage", data_files=[])

    edit(bundle, coreml)
    shutil.copytree(pkg, bundle / "encoder.mlpackage")
    m = json.loads((bundle / "manifest.json").read_text())
    for g in ("encoder", "decoder"):
        m["graphs"][g]["sha256"] = sha256_tree(bundle / f"{g}.mlpackage")
    verify_files(bundle, m)  # plain packages pass (folders are expected for coreml)
    (tmp_path / "secret").write_text("s")
    (pkg / "Data" / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(BundleError, match="leads outside"):
        verify_files(bundle, m)
    edit(bundle, lambda m: m.update(target="onnx"))
    with pytest.raises(BundleError):
        load_bundle(bundle, verify=False)


# ------------------------------------------------------------------ graph files


def test_truncated_onnx_is_a_bundle_error(bundle: Path) -> None:
    data = (bundle / "encoder.onnx").read_bytes()
    (bundle / "encoder.onnx").write_bytes(data[: len(data) // 3])
    edit(bundle, lambda m: m["graphs"]["encoder"].update(sha256=sha256_file(bundle / "encoder.onnx")))
    with pytest.raises(BundleError, match="encoder.onnx is not a loadable ONNX graph"):
        load_bundle(bundle)


@pytest.mark.parametrize("backend, message", [("torch", "runs torch graphs"), ("nope", "unknown backend"),
                                              ("tflite", "runs tflite graphs")])
def test_backend_must_run_the_bundles_target(bundle: Path, backend: str, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle, backend=backend)


def test_manifest_contract_mismatch_is_named(bundle: Path) -> None:
    edit(bundle, lambda m: m["processing"].update(low_res_size=128))
    with pytest.raises(BundleError, match=r"mask_input.*\['B', 1, 128, 128\]"):
        load_bundle(bundle)


# --------------------------------------------------------------- silent results


def test_failed_set_image_leaves_no_image(predictor: SamPredictor) -> None:
    predictor.set_image(demo_image(60, 90))
    with pytest.raises(InputError):
        predictor.set_image(np.zeros((1, 3000, 3), np.uint8))  # too elongated
    with pytest.raises(InputError, match="no image is set"):
        predictor.predict(point_coords=np.array([[10, 10]]), point_labels=np.array([1]))


@pytest.mark.parametrize("kwargs, message", [
    ({"point_coords": np.array([[1e39, 5.0]]), "point_labels": np.array([1])}, "point_coords must lie"),
    ({"box": np.array([0, 0, 1e30, 1e30])}, "boxes must lie"),
    ({"box": np.array([0, 0, 10, 10]), "mask_input": np.full((1, 256, 256), 1e300)}, "mask_input logits"),
    ({"point_coords": np.array([[np.nan, 5.0]]), "point_labels": np.array([1])}, "NaN"),
])
def test_absurd_prompts_are_input_errors(predictor: SamPredictor, kwargs: dict, message: str) -> None:
    predictor.set_image(demo_image(60, 90))
    with pytest.raises(InputError, match=message):
        predictor.predict(**kwargs)


def test_non_finite_graph_outputs_are_errors(predictor: SamPredictor,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    predictor.set_image(demo_image(60, 90))
    run = predictor.bundle.decoder.run

    def nan_run(feed: dict) -> dict:
        out = run(feed)
        out["iou_predictions"][:] = np.nan
        return out

    monkeypatch.setattr(predictor.bundle.decoder, "run", nan_run)
    with pytest.raises(GraphOutputError, match="NaN"):
        predictor.predict(box=np.array([5, 5, 40, 30]))
    enc = predictor.bundle.encoder.run
    monkeypatch.setattr(predictor.bundle.encoder, "run", lambda f: {k: v * np.inf for k, v in enc(f).items()})
    with pytest.raises(GraphOutputError, match="encoder graph returned NaN or infinite"):
        predictor.set_image(demo_image(60, 90))
    assert not predictor.is_image_set


def test_predict_batch_chunks_and_bounds_its_result(predictor: SamPredictor,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_sam_sdk.predictor as P

    predictor.set_image(demo_image(60, 90))
    boxes = np.array([[5 + i % 7, 5, 40 + i % 11, 30] for i in range(40)], np.float64)
    calls = []
    run = predictor.bundle.decoder.run
    monkeypatch.setattr(predictor.bundle.decoder, "run",
                        lambda f: calls.append(len(f["point_coords"])) or run(f))
    masks, scores, low = predictor.predict_batch(boxes=boxes)
    assert calls == [16, 16, 8] and masks.shape == (40, 3, 60, 90) and low.shape == (40, 3, 256, 256)
    single = predictor.predict(box=boxes[37])
    np.testing.assert_allclose(scores[37], single[1], atol=1e-5)
    monkeypatch.setattr(P, "MAX_RESULT_BYTES", 1000)
    with pytest.raises(InputError, match="pass fewer prompts"):
        predictor.predict_batch(boxes=boxes)


# ------------------------------------------------------------------------ images


def test_sixteen_bit_and_other_modes(tmp_path: Path) -> None:
    from PIL import Image

    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0..65535
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = load_image(tmp_path / "g16.png")
    assert img.shape == (16, 16, 3) and np.array_equal(img[..., 0].reshape(-1), np.arange(256))
    Image.new("LA", (4, 3), (77, 0)).save(tmp_path / "la.png")
    assert (load_image(tmp_path / "la.png") == 77).all()
    Image.new("F", (4, 3)).save(tmp_path / "f.tif")
    with pytest.raises(InputError, match="mode 'F' is not supported"):
        load_image(tmp_path / "f.tif")


@pytest.mark.parametrize("side", [12000, 20000])
def test_huge_images_are_refused_before_decoding(tmp_path: Path, side: int) -> None:
    from PIL import Image

    Image.new("1", (side, side)).save(tmp_path / "big.png")  # a few kB on disk
    with pytest.raises(InputError, match="downscale it first"):
        load_image(tmp_path / "big.png")


# --------------------------------------------------------------------------- CLI


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.mark.parametrize("args, code, message", [
    (["--out", "{t}/x"], 1, "no file extension"),
    (["--out", "{t}/x.qqq"], 1, "unknown file extension '.qqq'"),
    (["--box", "50,10,20,40"], 2, "X1 > X0"),
    (["--backend", "torch"], 1, "runs torch graphs"),
    (["--save-npz", "{t}/missing/o.npz"], 1, "does not exist"),
    (["--out", "{t}/missing/o.png"], 1, "does not exist"),
    (["--point", "1e39,5,1"], 1, "--point coordinates must lie within"),
    (["--image", "{t}/wide.png"], 1, "too elongated"),
])
def test_predict_refuses_before_any_work(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], code: int, message: str) -> None:
    save_png(demo_image(60, 90), tmp_path / "img.png")
    save_png(np.zeros((1, 3000, 3), np.uint8), tmp_path / "wide.png")
    base = {"--image": str(tmp_path / "img.png"), "--out": str(tmp_path / "o.png"), "--point": "20,30,1"}
    given = dict(zip(args[::2], (a.format(t=tmp_path) for a in args[1::2]), strict=True))
    if "--box" in given:
        base.pop("--point")
    argv = ["predict", str(bundle)] + [x for kv in (base | given).items() for x in kv]
    got, line = _cli(capsys, *argv)
    assert got == code and line.startswith("edgesam: error:") and message in line, line
    assert not (tmp_path / "o.png").exists() and not any(tmp_path.glob(".o.png*"))


def test_predict_negative_point_and_outputs_together(bundle: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    save_png(demo_image(60, 90), tmp_path / "img.png")
    got, _ = _cli(capsys, "predict", str(bundle), "--image", str(tmp_path / "img.png"), "--point",
                  "-5,20,1", "--out", str(tmp_path / "o.jpg"), "--save-npz", str(tmp_path / "o.npz"))
    assert got == 0 and load_image(tmp_path / "o.jpg").shape == (60, 90, 3)
    assert np.load(tmp_path / "o.npz")["masks"].shape == (1, 60, 90)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "img.png", "o.jpg", "o.npz"]


@pytest.mark.parametrize("args, code, message", [
    (["bench", "{b}", "--runs", "0"], 2, "at least 1"),
    (["bench", "{b}", "--json", "{t}/missing/b.json"], 1, "does not exist"),
    (["verify", "{b}", "--checkpoint", "synthetic:0", "--json", "{t}/missing/v.json"], 1, "does not exist"),
    (["export", "--variant", SMALL, "--checkpoint", "synthetic:0", "--out", "{t}/file"], 1, "is a file"),
    (["trt-check", "{t}/nope.onnx"], 1, "no such ONNX file"),
])
def test_other_commands_refuse_before_any_work(bundle: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], args: list[str],
                                               code: int, message: str) -> None:
    (tmp_path / "file").write_text("keep")
    got, line = _cli(capsys, *(a.format(b=bundle, t=tmp_path) for a in args))
    assert got == code and line.startswith("edgesam: error:") and message in line, line
    assert (tmp_path / "file").read_text() == "keep"


def test_sigint_stops_an_export_even_when_started_ignoring_it(tmp_path: Path) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored; the export
    still stops on it, exits 130 and leaves nothing."""
    out = tmp_path / "bundle"
    cmd = [sys.executable, "-m", "edge_sam_sdk.cli", "export", "--variant", SMALL, "--checkpoint",
           "synthetic:0", "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".bundle.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "edgesam: interrupted" in err and list(tmp_path.iterdir()) == []
