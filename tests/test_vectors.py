"""``edgesam vectors``: the processing test vectors that ports (the Kotlin module of
android_demo, any other) check themselves against. Format: ``edge_sam_sdk/vectors.py``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from edge_sam_sdk import processing as P
from edge_sam_sdk.cli import main
from edge_sam_sdk.registry import get_variant
from edge_sam_sdk.vectors import FORMAT, VARIANTS, write_vectors


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vectors(tmp_path_factory.mktemp("v") / "vectors", large=False)


def test_index_format(vectors: Path) -> None:
    index = json.loads((vectors / "index.json").read_text())
    assert index["format"] == FORMAT and index["version"] == 1
    assert {"resized_uint8_levels", "model_input_abs", "mask_logits_abs"} <= set(index["tolerances"])
    assert [c["variant"] for c in index["cases"]][::2] == list(VARIANTS)
    # Together the cases use every processing rule a manifest can hold.
    used = {k: {c["processing"][k] for c in index["cases"]}
            for k in ("resize", "interpolation", "postprocess", "mask_interpolation", "pad_point")}
    assert used == {"resize": {"longest_side", "longest_side_floor", "stretch"},
                    "interpolation": {"pil_bilinear", "pil_bicubic", "torch_bilinear", "torch_bilinear_aa"},
                    "postprocess": {"sam", "crop_low_res", "resize"},
                    "mask_interpolation": {"torch_bilinear", "torch_bicubic"},
                    "pad_point": {"no_box", "never", "always"}}
    for case in index["cases"]:
        for key in ("image", "resized", "model_input", "low_res", "mask_logits", "masks"):
            assert (vectors / case[key]).exists()
        assert {p["name"] for p in case["prompts"]} == {"point", "two_points", "box", "box_and_point"}


def test_vectors_equal_the_sdk(vectors: Path) -> None:
    """Re-derive every stored step from the image and prompts with edge_sam_sdk.processing."""
    index = json.loads((vectors / "index.json").read_text())
    fallback_fired = False
    for case in index["cases"]:
        spec = P.ProcessingSpec.from_dict(case["processing"])
        assert spec == get_variant(case["variant"]).processing
        image = np.load(vectors / case["image"])
        size = tuple(case["original_size"])
        assert image.shape == size + (3,) and image.dtype == np.uint8
        model_input, resized = P.preprocess(image, spec)
        assert list(resized) == case["resized_size"]
        np.testing.assert_array_equal(model_input, np.load(vectors / case["model_input"]))
        stored = np.load(vectors / case["resized"])
        assert stored.dtype == (np.uint8 if spec.interpolation.startswith("pil_") else np.float32)
        low = np.load(vectors / case["low_res"])
        logits = P.postprocess_masks(low, size, spec)
        np.testing.assert_array_equal(logits, np.load(vectors / case["mask_logits"]))
        np.testing.assert_array_equal(logits > spec.mask_threshold, np.load(vectors / case["masks"]))
        for p in case["prompts"]:
            coords = None if p["points"] is None else P.transform_coords(np.array([p["points"]]), size, spec)
            labels = None if p["labels"] is None else np.array([p["labels"]], np.float32)
            boxes = None if p["box"] is None else P.transform_boxes(np.array([p["box"]]), size, spec)
            pc, pl = P.decoder_prompts(coords, labels, boxes, 1, spec)
            np.testing.assert_array_equal(pc[0], np.array(p["point_coords"], np.float32))
            np.testing.assert_array_equal(pl[0], np.array(p["point_labels"], np.float32))
        single = case["selection"]["single"]["tokens"]
        fallback_fired |= single != case["mask_selection"].get("single", [0])
    assert fallback_fired, "SAM 2's stability fallback should fire on its near-zero token 0"


def test_cli_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    assert main(["vectors", "--out", str(out), "--variant", "nanosam", "--small"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == 2
    assert main(["vectors", "--out", str(out), "--variant", "nanosam", "--small"]) == 1  # not empty
    assert "--overwrite" in capsys.readouterr().err
    assert main(["vectors", "--out", str(tmp_path / "w"), "--variant", "no_such_variant"]) == 1
    assert "unknown variant" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_vectors_need_no_torch(tmp_path: Path) -> None:
    code = ("import sys; from edge_sam_sdk.cli import main; "
            f"main(['vectors', '--out', {str(tmp_path / 'v')!r}, '--variant', 'mobile_sam', '--small']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("kotlinc") is None or shutil.which("java") is None,
                    reason="kotlinc/java not installed (Debian: apt-get install kotlin); "
                           ".ci/run runs android_demo/test_processing.sh where they are")
def test_kotlin_port_passes_the_vectors(vectors: Path) -> None:
    run = subprocess.run([str(ROOT / "android_demo" / "test_processing.sh"), str(vectors)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "checks passed" in run.stdout


@pytest.mark.skipif(shutil.which("swift") is None,
                    reason="swift not installed (a toolchain from swift.org); .ci/run runs "
                           "ios_demo/test_processing.sh where it is")
def test_swift_port_passes_the_vectors(vectors: Path) -> None:
    """ios_demo's EdgeSamKit (``swift test``, about 30 s from a clean build) on the small vectors."""
    run = subprocess.run([str(ROOT / "ios_demo" / "test_processing.sh"), str(vectors)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "checks passed" in run.stdout
