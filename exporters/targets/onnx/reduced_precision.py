"""Turn the fp32 graphs of a bundle being exported into fp16 or int8 ones, with a quality report.

Called by :func:`...export.export_bundle` inside its temporary folder, after the fp32 graphs
were exported and checked against torch. The fp32 graphs move to a sibling scratch folder
(removed afterwards) and serve as the quality report's reference; the reduced graphs take
their file names, so the bundle layout does not change with precision.

What each precision does to each graph:

==========  =====================================  ======================================
precision   encoder                                decoder
==========  =====================================  ======================================
fp16        fp16, fp32 I/O, overflow-prone ops     same as the encoder
            kept fp32 (:func:`.quantization.to_fp16`)
int8        QDQ, sensitivity-selected nodes        fp32 (see benchmarks/README.md: it is
            (:func:`to_int8`)                      ~5 % of a prompt's latency budget)
==========  =====================================  ======================================
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.bundle import Bundle, sha256_tree
from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.processing import preprocess

from ...calibration import CalibrationSet, Image
from ...quality import probe_scorer, quality_report
from .int8_select import select_nodes
from .quantization import INT8_OPS, Feed, Int8Config, quantize, tensor_ranges, to_fp16

PROBE_IMAGES = 2  #: calibration images the int8 node selection scores e2e masks on


def _backend(path: Path) -> Any:
    from edge_sam_sdk.runtimes.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path)


def to_int8(src: Path, dst: Path, feeds: Sequence[Feed], config: Int8Config,
            accept: Callable[[Path], float], say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Quantize the encoder graph ``src`` into ``dst``; returns facts for the manifest.

    ``feeds[0]`` is the probe input of the node selection's sensitivity pass and ``accept``
    scores candidate encoders (see :func:`.int8_select.select_nodes`); both use calibration
    images only, never held-out ones.
    """
    say = say or (lambda _m: None)
    if not feeds:
        raise EdgeSamError("int8 calibration needs at least one image")
    with tempfile.TemporaryDirectory(prefix="edgesam_int8.") as tmp:
        cache = Path(tmp) / "ranges.json"
        say(f"calibrating activation ranges on {len(feeds)} image(s)")
        tensor_ranges(src, feeds, INT8_OPS, cache)
        selection = select_nodes(src, cache, feeds[0], config, Path(tmp), accept, say)
        quantize(src, dst, cache, config, selection["nodes"])
    return {"scheme": config.scheme, "format": "QDQ", "op_types": list(INT8_OPS),
            "weights": "int8 symmetric, per channel",
            "activations": ("int8 symmetric (zero point 0), per tensor" if config.symmetric
                            else "uint8 asymmetric, per tensor"),
            "calibration_method": "MinMax", "selection": {k: v for k, v in selection.items() if k != "nodes"},
            "quantized_nodes": len(selection["nodes"])}


def reduce_bundle(tmp: Path, manifest: dict[str, Any], cal: CalibrationSet, precision: str,
                  int8: Int8Config | None = None, quality_images: Sequence[Image] = (),
                  say: Callable[[str], None] = lambda _m: None, steps: tuple[int, int] = (5, 6)) -> None:
    """Replace the fp32 graphs in ``tmp`` by ``precision`` ones; update ``manifest`` in place.

    Adds ``manifest["calibration"]`` (source, image counts and names) and
    ``manifest["quality"]`` (:func:`...quality.quality_report` on ``quality_images`` plus the
    held-out calibration images); sets each graph entry's ``precision``, ``sha256`` and
    ``reduced`` facts.
    """
    spec_graphs = manifest["graphs"]
    if any(spec_graphs[g].get("data_files") for g in ("encoder", "decoder")):
        raise EdgeSamError(f"{precision} export of graphs over 2 GiB (stored with external data, e.g. "
                           "SAM ViT-H) is not supported")
    feeds = [{"image": preprocess(im, _processing(manifest))[0]} for _, im in cal.calibrate]
    ref_dir = Path(tempfile.mkdtemp(prefix=".fp32_reference.", dir=tmp.parent))
    try:
        for g in ("encoder", "decoder"):
            shutil.move(str(tmp / spec_graphs[g]["file"]), ref_dir / spec_graphs[g]["file"])
        ref_manifest = dict(manifest, precision="fp32")
        reference = Bundle(ref_manifest, *(_backend(ref_dir / spec_graphs[g]["file"])
                                           for g in ("encoder", "decoder")))
        step, total = steps
        say(f"[{step}/{total}] converting graphs to {precision}")
        facts: dict[str, Any] = {}
        if precision == "fp16":
            for g in ("encoder", "decoder"):
                g_feeds = feeds if g == "encoder" else _decoder_feeds(reference, feeds)
                facts[g] = to_fp16(ref_dir / spec_graphs[g]["file"], tmp / spec_graphs[g]["file"], g_feeds)
        else:
            config = int8 or Int8Config()
            enc, dec = (spec_graphs[g]["file"] for g in ("encoder", "decoder"))
            accept = probe_scorer(reference, lambda p: Bundle(manifest, _backend(p), reference.decoder),
                                  cal.calibrate[:PROBE_IMAGES])
            facts["encoder"] = to_int8(ref_dir / enc, tmp / enc, feeds, config, accept, say)
            shutil.copyfile(ref_dir / dec, tmp / dec)
            facts["decoder"] = {"kept": "fp32"}
        for g in ("encoder", "decoder"):
            entry = spec_graphs[g]
            entry["precision"] = "fp32" if facts[g].get("kept") == "fp32" else precision
            entry["sha256"] = sha256_tree(tmp / entry["file"])
            entry["reduced"] = facts[g]
        say(f"[{total}/{total}] quality report: {precision} vs fp32 on "
            f"{len(quality_images) + len(cal.held_out)} held-out image(s)")
        candidate = Bundle(manifest, *(_backend(tmp / spec_graphs[g]["file"])
                                       for g in ("encoder", "decoder")))
        manifest["calibration"] = cal.manifest()
        manifest["quality"] = quality_report(reference, candidate, list(quality_images) + cal.held_out,
                                             precision=precision)
    finally:
        shutil.rmtree(ref_dir, ignore_errors=True)


def _processing(manifest: dict[str, Any]) -> Any:
    from edge_sam_sdk.processing import ProcessingSpec

    return ProcessingSpec.from_dict(manifest["processing"])


def _decoder_feeds(reference: Bundle, encoder_feeds: Sequence[dict[str, np.ndarray]],
                   limit: int = 2) -> list[dict[str, np.ndarray]]:
    """Decoder inputs for range checks: fp32 encoder outputs of calibration images with one
    click and one box prompt each (in the prompt frame of the variant)."""
    from edge_sam_sdk.processing import decoder_prompts

    spec = reference.processing
    inputs = [t["name"] for t in reference.graph("decoder")["inputs"]]
    out = []
    for feed in encoder_feeds[:limit]:
        feats = reference.encoder.run(feed)
        for pts, labels, box in (([[[300.0, 400.0]]], [[1.0]], None),
                                 (None, None, np.array([[100.0, 150.0, 600.0, 700.0]]))):
            coords, labs = decoder_prompts(None if pts is None else np.array(pts),
                                           None if labels is None else np.array(labels), box, spec=spec)
            dec = {k: v for k, v in feats.items() if k in inputs}
            dec.update(point_coords=coords, point_labels=labs)
            if "mask_input" in inputs:
                low = spec.low_res_size
                dec.update(mask_input=np.zeros((1, 1, low, low), np.float32),
                           has_mask_input=np.zeros((1,), np.float32))
            out.append(dec)
    return out
