"""Auto-labelling on Ray Data: an actor pool, one bundle load per worker, one COCO file.

    import ray
    from edge_sam_sdk.everything.ray_labelling import label_dataset
    ds = ray.data.from_items([{"file_name": "a.jpg", "path": "/data/a.jpg"}, ...])
    results = label_dataset(ds, "/shared/bundles/mobile_sam", {"sampling": "hierarchical"}, workers=8)
    for row in results.iter_rows(): ...     # {"file_name", "entry": JSON of the journal entry}

:func:`label_dataset` maps a dataset of ``{"file_name", "path"}`` rows through
:class:`LabelWorker` actors (``workers`` of them, ``cpus_per_worker`` CPUs and onnxruntime
threads each): every actor loads the bundle once and reads images from their paths, so the
bundle folder and the images must be readable at the same paths on every node (a shared file
system). A worker process that dies is restarted and its batch retried (``max_restarts`` /
``max_task_retries`` unlimited), so no image is lost; the driver keeps the first entry per
image, so none is counted twice.

:func:`label_with_ray` is ``edgesam label --ray``: the same journal and output as
:func:`labelling.label` (resumable, bad images reported and skipped); each run's results
stream back to the driver and are appended to its own shard ``<out>.parts/ray-*.jsonl``,
merged into the COCO file at the end.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import EdgeSamError
from . import labelling as L


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EdgeSamError("Ray is not installed: pip install 'edgesam[ray]'") from None
    return ray


class LabelWorker:
    """A Ray Data actor: loads the bundle once, labels batches of ``{"file_name", "path"}``
    rows into ``{"file_name", "entry"}`` (the journal entry as JSON text)."""

    def __init__(self, bundle: str, settings: dict[str, Any], threads: int | None = None,
                 boxes: dict[str, Any] | None = None) -> None:
        self.generator = L.make_generator(bundle, settings, threads)
        self.boxes = boxes

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        names = [str(n) for n in batch["file_name"]]
        entries = [json.dumps(L.label_image(self.generator, name, str(path), self.boxes),
                              separators=(",", ":"))
                   for name, path in zip(names, batch["path"], strict=True)]
        return {"file_name": names, "entry": entries}


def label_dataset(ds: Any, bundle: str | Path, settings: dict[str, Any] | None = None, workers: int = 2,
                  cpus_per_worker: int = 1, boxes: dict[str, Any] | None = None, batch_size: int = 1,
                  worker_cls: type = LabelWorker) -> Any:
    """``ds`` (rows ``{"file_name", "path"}``) -> a dataset of ``{"file_name", "entry"}``
    rows, labelled by ``workers`` actors (module docstring); lazy, like every Ray Data op."""
    settings = L.generator_settings(settings)
    return ds.map_batches(
        worker_cls, batch_size=int(batch_size), concurrency=int(workers), num_cpus=cpus_per_worker,
        batch_format="numpy",
        fn_constructor_kwargs={"bundle": str(bundle), "settings": settings, "threads": int(cpus_per_worker),
                               "boxes": boxes},
        max_restarts=-1, max_task_retries=-1)


def label_with_ray(source: str | Path, bundle: str | Path, out: str | Path,
                   settings: dict[str, Any] | None = None, address: str | None = None, workers: int = 2,
                   cpus_per_worker: int = 1, boxes: dict[str, Any] | None = None, progress: bool = True,
                   say: Any = None, worker_cls: type = LabelWorker) -> dict[str, Any]:
    """:func:`labelling.label` on Ray: connects to ``address`` (None: the running instance or a
    new local one) unless Ray is already initialised."""
    ray = _ray()
    settings = L.generator_settings(settings)
    items = L.list_images(source)
    L.make_generator(bundle, settings, 1)  # bad settings or bundle fail here, before any file is written
    journal = L.Journal(out, L.fingerprint(bundle, settings))
    done = journal.entries()
    todo = L.pending(items, done)
    if say:
        say(f"{len(items)} images, {len(items) - len(todo)} already labelled in {journal.dir}; "
            f"{len(todo)} on Ray with {workers} workers")
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False,
                     **({} if address else {"num_cpus": max(workers * cpus_per_worker, 1)}))
        ds = ray.data.from_items([{"file_name": n, "path": str(Path(p).resolve())} for n, p in todo])
        results = label_dataset(ds, Path(bundle).resolve(), settings, workers, cpus_per_worker, boxes,
                                worker_cls=worker_cls)
        shard = f"ray-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.jsonl"
        seen: set[str] = set()
        bar = L.progress_bar(len(items), progress, len(items) - len(todo))
        try:
            for row in results.iter_rows():
                name = str(row["file_name"])
                if name in seen:  # a retried batch that had already come back
                    continue
                seen.add(name)
                entry = json.loads(row["entry"])
                journal.append([entry], shard)
                bar.update(1)
                if "error" in entry and say:
                    say(f"skipped {name}: {entry['error']}")
        finally:
            bar.close()
    return L.finish(out, items, journal, {"description": "edgesam label --ray", "settings": settings})
