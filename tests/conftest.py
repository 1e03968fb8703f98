"""Shared fixtures: golden files (copied into tests/golden), the shared photos, bundles."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pytest

from edge_sam_sdk.registry import list_variants
from edge_sam_sdk.testing import Golden

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
LAYOUT_DIR = Path(__file__).resolve().parent / "layouts"
SHARED = ROOT.parent / "shared"
TRUCK = SHARED / "images" / "truck.jpg"


@pytest.fixture(autouse=True, scope="session")
def _checkpoints_offline(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Official checkpoints never come from the network in tests (``edgesam demo`` falls back
    to synthetic weights; tests/test_fetch.py serves its own on 127.0.0.1) and the cache is
    a fresh folder, not the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("EDGESAM_OFFLINE", "1")
    patch.setenv("EDGESAM_HOME", str(tmp_path_factory.mktemp("edgesam_home")))
    yield
    patch.undo()


def golden(variant: str) -> Golden:
    return Golden(GOLDEN_DIR / f"{variant}.npz")


def golden_variants(require: str | None = None) -> list[str]:
    """Registered variants whose golden file holds tensor ``require`` (all if None)."""
    out = []
    for v in list_variants():
        path = GOLDEN_DIR / f"{v}.npz"
        if path.exists() and (require is None or golden(v).has_tensor(require)):
            out.append(v)
    return out


def layout_variants() -> list[object]:
    """Registered variants without a golden file, checked by ``tests/layouts/<variant>.txt``."""
    return [pytest.param(v, marks=heavy(v), id=v) for v in list_variants()
            if not (GOLDEN_DIR / f"{v}.npz").exists() and (LAYOUT_DIR / f"{v}.txt").exists()]


def read_layout(variant: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` per line ``key|d0,d1,...|dtype`` of ``tests/layouts/<variant>.txt``."""
    out = []
    for line in (LAYOUT_DIR / f"{variant}.txt").read_text().splitlines():
        if line.strip():
            key, shape, _dtype = line.split("|")
            out.append((key, tuple(int(s) for s in shape.split(",")) if shape else ()))
    return out


#: Encoders of 200M+ parameters: their tests are marked slow, their ONNX export is opt-in.
HEAVY = ("sam_vit_l", "sam_vit_h", "sam2_1_hiera_large")


def heavy(variant: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if variant in HEAVY else []


def variant_params(require: str | None = None) -> list[object]:
    return [pytest.param(v, marks=heavy(v), id=v) for v in golden_variants(require)]


@pytest.fixture(scope="session")
def truck() -> np.ndarray:
    if not TRUCK.exists():
        pytest.skip(f"{TRUCK} is absent: the real-photo golden cases need ../shared/images/truck.jpg "
                    "(it belongs to another repository and is not committed here)")
    from edge_sam_sdk.visualize import load_image

    return load_image(TRUCK)


@pytest.fixture(scope="session")
def models() -> dict[str, object]:
    """Torch models with synthetic weights (seed 0), built once per variant."""
    return {}


def get_model(models: dict[str, object], variant: str) -> object:
    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.registry import get_variant

    if variant not in models:
        models.clear()  # hold one model at a time: ViT-H alone is 2.5 GB
        gc.collect()
        models[variant] = load_model(get_variant(variant), "synthetic:0")
    return models[variant]


@pytest.fixture(scope="session")
def onnx_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ONNX bundles exported with synthetic:0, built lazily once per variant."""
    return {"_root": tmp_path_factory.mktemp("bundles")}




def get_bundle(bundles: dict[str, Path], variant: str) -> Path:
    from edge_sam_sdk.exporters.export import export_bundle

    if variant in HEAVY and not os.environ.get("EDGESAM_HEAVY_ONNX"):
        pytest.skip(f"exporting {variant} to ONNX in the test process peaks near 10 GB next to the "
                    "cached models and takes minutes; opt in with EDGESAM_HEAVY_ONNX=1")

    if variant not in bundles:
        bundles[variant] = export_bundle(variant, "synthetic:0", bundles["_root"] / variant)
    return bundles[variant]
