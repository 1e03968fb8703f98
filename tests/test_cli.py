"""The edgesam CLI: commands work, bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import get_bundle
from edge_sam_sdk.cli import main
from edge_sam_sdk.visualize import demo_image, save_png

SMALL = "mobile_sam"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_sam_sdk.cli", *args], capture_output=True,
                          text=True, timeout=900)


def test_list() -> None:
    from edge_sam_sdk.registry import list_variants

    r = run("list")
    assert r.returncode == 0
    for v in list_variants():
        assert v in r.stdout
    assert "onnx" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["export", "--variant", "nope", "--checkpoint", "synthetic:0", "--out", "{tmp}/x"], "unknown variant"),
    (["export", "--variant", SMALL, "--checkpoint", "{tmp}/none.pth", "--out", "{tmp}/x"],
     "checkpoint not found"),
    (["predict", "{tmp}/nobundle", "--image", "{tmp}/img.png", "--point", "1,2,1", "--out", "{tmp}/o.png"],
     "bundle folder not found"),
])
def test_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    save_png(demo_image(60, 90), tmp_path / "img.png")
    r = run(*[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("edgesam: error:") and message in lines[-1], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_bad_point_syntax_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["predict", "b", "--image", "i.png", "--point", "1,2", "--out", "o.png"])
    assert e.value.code == 2
    assert "X,Y,LABEL" in capsys.readouterr().err


def test_predict_verify_bench(onnx_bundles: dict, tmp_path: Path) -> None:
    bundle = get_bundle(onnx_bundles, SMALL)
    save_png(demo_image(), tmp_path / "img.png")
    r = run("predict", str(bundle), "--image", str(tmp_path / "img.png"), "--point", "270,330,1",
            "--box", "160,230,420,450", "--out", str(tmp_path / "ov.png"), "--save-npz",
            str(tmp_path / "o.npz"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["iou_predictions"]) == 1 and (tmp_path / "ov.png").stat().st_size > 0
    assert (tmp_path / "o.npz").exists()
    r = run("predict", str(bundle), "--image", str(tmp_path / "img.png"), "--point", "270,330,1",
            "--multimask", "--all-masks", "--stability-score", "--out", str(tmp_path / "ov3.png"))
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout)["iou_predictions"]
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)

    assert main(["verify", str(bundle), "--checkpoint", "synthetic:0",
                 "--json", str(tmp_path / "v.json")]) == 0
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["ok"] and report["checkpoint_matches_manifest"]

    assert main(["bench", str(bundle), "--runs", "2", "--warmup", "1",
                 "--json", str(tmp_path / "b.json")]) == 0
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["encoder_ms"]["median"] > 0 and b["decoder_ms"]["runs"] == 2
    for key in ("encoder_gflops", "decoder_gflops", "peak_gflops", "encoder_floor_ratio",
                "decoder_floor_ratio"):
        assert b[key] > 0, key
    assert b["decoder_floor_ratio"] == pytest.approx(
        b["decoder_ms"]["median"] / 1e3 / (b["decoder_gflops"] / b["peak_gflops"]))
    assert b["decoder_batch_ms"]["batch"] == 16 and b["decoder_batch_speedup"] > 0


def test_export_nanosam_and_its_two_file_checkpoint(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--variant", "nanosam", "--checkpoint", "synthetic:0",
                 "--out", str(tmp_path / "nano")]) == 0
    manifest = json.loads((tmp_path / "nano" / "manifest.json").read_text())
    assert manifest["processing"]["postprocess"] == "crop_low_res"
    assert manifest["graphs"]["decoder"]["extra"]["mask_selection"]["multimask"] == [0, 1, 2, 3]
    capsys.readouterr()  # drop the export's progress lines
    (tmp_path / "enc.pth").write_bytes(b"")
    assert main(["export", "--variant", "nanosam", "--checkpoint", str(tmp_path / "enc.pth"),
                 "--out", str(tmp_path / "nano2")]) == 1
    errors = [e for e in capsys.readouterr().err.splitlines() if e.startswith("edgesam: error:")]
    assert len(errors) == 1 and "2 checkpoint files" in errors[0] and not (tmp_path / "nano2").exists()


def test_verify_detects_other_weights(onnx_bundles: dict, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = get_bundle(onnx_bundles, SMALL)
    assert main(["verify", str(bundle), "--checkpoint", "synthetic:1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "not the one the bundle was exported from" in out


def test_demo(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    for name in ("demo_overlay.png", "demo_image.png", "demo_timings.json"):
        assert (tmp_path / name).exists()
    assert (tmp_path / "mobile_sam_onnx" / "manifest.json").exists()
