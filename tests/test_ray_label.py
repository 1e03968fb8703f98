"""`edgesam label --ray`: a local Ray instance (num_cpus=2, two worker actors) labels a few
small images; the COCO file equals the single-process run's, and a worker killed mid-run
loses and duplicates nothing. Skipped when ray is not installed (pip install 'edgesam[ray]')."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import get_bundle
from edge_sam_sdk.everything import labelling as L
from edge_sam_sdk.visualize import demo_image, save_png

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'edgesam[ray]'); "
                          "the Ray Data labelling path is not tested")
pytest.importorskip("ray.data", reason="ray.data is missing (pip install 'edgesam[ray]')")

from edge_sam_sdk.everything import ray_labelling as RL  # noqa: E402

SETTINGS = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


class DyingWorker(RL.LabelWorker):
    """Kills its own process on ``c.png`` the first time (a marker file says it happened)."""

    marker = ""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if "c.png" in [str(n) for n in batch["file_name"]] and not os.path.exists(self.marker):
            Path(self.marker).write_text("killed")
            os._exit(1)
        return super().__call__(batch)


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray_images")
    for name, (h, w) in {"a.png": (64, 96), "b.png": (80, 60), "c.png": (72, 72), "d.png": (50, 90)}.items():
        save_png(demo_image(h, w), root / name)
    (root / "broken.png").write_bytes(b"\x89PNG but not really")
    return root


def _doc(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    doc.pop("info")
    return doc


def test_ray_equals_single_process(local_ray: Any, images: Path, onnx_bundles: dict, tmp_path: Path) -> None:
    bundle = get_bundle(onnx_bundles, "mobile_sam")
    single = L.label(images, bundle, tmp_path / "single.json", SETTINGS, threads=1, progress=False)
    spread = RL.label_with_ray(images, bundle, tmp_path / "ray.json", SETTINGS, workers=2, progress=False)
    assert spread["images"] == single["images"] == 4
    assert [f["file_name"] for f in spread["failed"]] == ["broken.png"]
    assert _doc(tmp_path / "ray.json") == _doc(tmp_path / "single.json")
    assert list((tmp_path / "ray.json.parts").glob("ray-*.jsonl"))


def test_killed_worker_is_retried(local_ray: Any, images: Path, onnx_bundles: dict, tmp_path: Path) -> None:
    bundle = get_bundle(onnx_bundles, "mobile_sam")
    DyingWorker.marker = str(tmp_path / "killed")
    summary = RL.label_with_ray(images, bundle, tmp_path / "k.json", SETTINGS, workers=2, progress=False,
                                worker_cls=DyingWorker)
    assert (tmp_path / "killed").exists(), "the worker was never killed: the test checks nothing"
    doc = json.loads((tmp_path / "k.json").read_text())
    names = [im["file_name"] for im in doc["images"]]
    assert names == ["a.png", "b.png", "c.png", "d.png"] and summary["missing"] == []
    parts = (tmp_path / "k.json.parts").glob("*.jsonl")
    lines = [json.loads(x) for p in parts for x in p.read_text().splitlines()]
    assert sorted(e["file_name"] for e in lines) == ["a.png", "b.png", "broken.png", "c.png", "d.png"]
    assert len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])
