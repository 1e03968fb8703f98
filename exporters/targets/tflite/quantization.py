"""fp16 and int8 for tflite graphs, applied to the fp32 ``.tflite`` by ``ai-edge-quantizer``.

- ``fp16``: weights of fully-connected, conv and depthwise-conv ops stored as float16
  (``float_casting``, weight-only); activations and arithmetic stay float32 (XNNPACK may run
  fp16 arithmetic on CPUs that have it). Both graphs.
- ``int8`` encoder: static quantization of the ops in :data:`ENCODER_INT8_OPS` (the fully
  connected layers: MLPs and attention projections): int8 weights (per channel) and int8
  activations (per tensor), their ranges the min/max over *all* calibration images (fed
  through the variant's own preprocessing). ai-edge-quantizer's default keeps a moving
  average (factor 0.95) of per-image ranges, which mostly reflects the first images; the
  union measured better. Convolutions, attention matmuls, norms, softmax and GELU stay
  float: int8 convolutions cost the most mask IoU and int8 batch matmuls ran slower than
  fp32 (both measured on ``mobile_sam``, see docs/targets/tflite.md).
- ``int8`` decoder: ``dynamic_wi8_afp32`` (int8 weights, activations quantized at run
  time; measured better than static int8 here, and needs no decoder calibration).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.errors import EdgeSamError
from edge_sam_sdk.graphs import GraphSpec
from edge_sam_sdk.processing import ProcessingSpec, preprocess

from ...calibration import CalibrationSet

#: Recipe of each graph at int8 (keys of :func:`_recipe`).
ENCODER_INT8 = "static_int8_fully_connected"
ENCODER_INT8_OPS = ("FULLY_CONNECTED",)
DECODER_INT8 = "dynamic_wi8_afp32"


def _recipe(name: str) -> Any:
    from ai_edge_quantizer import recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    manager = recipe_manager.RecipeManager()
    if name == "fp16_weights":
        manager.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED,
                                       num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
    elif name == ENCODER_INT8:
        for op in ENCODER_INT8_OPS:
            manager.add_static_config(regex=".*", operation_name=TFLOperationName(op),
                                      activation_num_bits=8, weight_num_bits=8)
    else:
        return getattr(recipe, name)()
    return manager.get_quantization_recipe()


def _union(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Range update over calibration samples: min of mins, max of maxes."""
    if not old:
        return new
    return {"min": np.minimum(old["min"], new["min"]), "max": np.maximum(old["max"], new["max"])}


def calibrate(fp32: Path, recipe_name: str, data: dict[str, list[dict[str, np.ndarray]]]) -> dict[str, Any]:
    """Per-tensor min/max of ``fp32`` over every sample of ``data`` (signature -> feeds)."""
    from ai_edge_quantizer import calibrator, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(_recipe(recipe_name))
    calib = calibrator.Calibrator(str(fp32), num_threads=1, qsv_update_func=_union,
                                  mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED)
    calib.calibrate(data, manager)
    return dict(calib.get_model_qsvs())


def quantize(fp32: Path, path: Path, recipe_name: str,
             calibration: dict[str, list[dict[str, np.ndarray]]] | None = None) -> dict[str, Any]:
    """Quantize ``fp32`` into ``path`` with recipe ``recipe_name``; manifest facts."""
    from ai_edge_quantizer import quantizer

    t0 = time.perf_counter()
    try:
        with _quiet():
            q = quantizer.Quantizer(str(fp32), _recipe(recipe_name))
            result = None
            if q.need_calibration:
                if not calibration:
                    raise EdgeSamError(f"recipe {recipe_name} needs calibration data")
                result = calibrate(fp32, recipe_name, calibration)
            q.quantize(result, enable_progress_bar=False).export_model(str(path), overwrite=True)
    except EdgeSamError:
        raise
    except Exception as exc:  # the quantizer raises ValueError/RuntimeError with its reason
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise EdgeSamError(f"ai-edge-quantizer could not apply {recipe_name} to {fp32.name}: "
                           f"{type(exc).__name__}: {first[:300]}") from exc
    return {"quantization": {"recipe": recipe_name, "tool": "ai-edge-quantizer",
                             "fp32_bytes": fp32.stat().st_size, "bytes": path.stat().st_size,
                             "seconds": round(time.perf_counter() - t0, 1)}}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the quantizer's size report, progress bars and its per-signature warning that a
    shared weight buffer is quantized again (every decoder signature shares the weights)."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the calibrator's preserve-all-tensors notice
            yield
    finally:
        logging.disable(logging.NOTSET)


def fp16_weights(fp32: Path, path: Path) -> dict[str, Any]:
    return quantize(fp32, path, "fp16_weights")


def encoder_feeds(cal: CalibrationSet, processing: ProcessingSpec) -> list[dict[str, np.ndarray]]:
    """The encoder's calibration feeds: ``cal``'s images through the variant's preprocessing."""
    return [{"image": preprocess(img, processing)[0]} for _, img in cal.calibrate]


def int8(graph: GraphSpec, fp32: Path, path: Path, signatures: list[str],
         feeds: list[dict[str, np.ndarray]], say: Callable[[str], None]) -> dict[str, Any]:
    """int8 ``graph``: encoder static, calibrated on ``feeds``; decoder :data:`DECODER_INT8`."""
    if graph.name == "encoder":
        say(f"    int8: {', '.join(ENCODER_INT8_OPS)} ops static int8, ranges over "
            f"{len(feeds)} calibration images")
        facts = quantize(fp32, path, ENCODER_INT8, {signatures[0]: feeds})
        facts["quantization"].update(int8_ops=list(ENCODER_INT8_OPS),
                                     ranges="min/max over all calibration images")
        return facts
    say(f"    int8: {DECODER_INT8} (int8 weights, activations quantized at run time)")
    return quantize(fp32, path, DECODER_INT8)
