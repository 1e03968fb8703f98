"""TensorRT target: serialized engines built from our TensorRT-ready ONNX graphs.

Each graph is exported to ONNX without onnxruntime-only fusions, checked by
:mod:`exporters.targets.tensorrt.readiness` (a problem stops the export before any build), parsed with
TensorRT's ONNX parser and built with the Python API:

* one optimization profile per graph from the GraphSpec's dynamic axes: prompts ``B`` in
  ``1..max_prompts`` (opt 1), points ``N`` in ``1..max_points`` (opt ``min(2, max)``);
* ``fp16``: FP16 kernels, with :func:`tensorrt_check.fp32_node_names` (LayerNorm, softmax,
  ReduceMean, Pow, Sqrt, fp16-unsafe epsilons) pinned to fp32 by layer precision, output
  type and ``OBEY_PRECISION_CONSTRAINTS``;
* ``int8``: the encoder in INT8 (FP16 and those fp32 layers as fallback), calibrated by an
  entropy calibrator (``IInt8EntropyCalibrator2``) over ``calibration_images`` preprocessed
  as at run time, with a calibration cache written into the bundle (or read from
  ``calibration_cache``); the decoder, which takes prompts rather than images, in fp16.

The bundle keeps the ONNX graphs next to the engines and a ``trtexec.sh`` with the
equivalent ``trtexec`` command lines, so engines can be rebuilt on the device itself
(engines only run with the TensorRT version and GPU they were built with, which the
manifest records under ``"tensorrt"``).
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_sam_sdk.errors import EdgeSamError, InputError
from edge_sam_sdk.graphs import GraphSpec
from edge_sam_sdk.processing import ProcessingSpec

from ..onnx.graph_constants import ORT_FUSIONS
from .readiness import check_model, format_report, fp32_node_names

PRECISIONS = ("fp32", "fp16", "int8")
#: Parity bounds against torch (max abs relative to max |ref|, relative L2) of reduced
#: precision engines; fp32 engines keep the graph's own bounds. These guard against
#: catastrophes, not for accuracy: an fp16 overflow (NaN, inf, zeroed outputs) fails them,
#: so such an engine is never written.
REDUCED_BOUNDS = {"fp16": (0.1, 0.05), "int8": (1.0, 0.25)}
CALIBRATION_CACHE = "calibration.cache"
TRTEXEC_SCRIPT = "trtexec.sh"
INSTALL_HINT = "install with: pip install 'edgesam[tensorrt]' (on Jetson use the JetPack TensorRT)"


@dataclass(frozen=True)
class TensorRTOptions:
    """Build options of a TensorRT bundle.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8`` (encoder int8, decoder fp16).
        max_points: most decoder points per prompt (clicks, two box corners and the padding
            point all count); the engine refuses more.
        max_prompts: most prompts per decoder run (``predict_batch``).
        workspace_mb: builder workspace limit in MiB.
        calibration_images: folder of images for int8 calibration.
        calibration_cache: an existing calibration cache to reuse (int8; images not needed).
        calibration_limit: calibrate with at most this many images.
        processing: the variant's processing (how calibration images are preprocessed).
    """

    precision: str = "fp32"
    max_points: int = 16
    max_prompts: int = 8
    workspace_mb: int = 1024
    calibration_images: str | None = None
    calibration_cache: str | None = None
    calibration_limit: int = 512
    processing: ProcessingSpec | None = None

    def validate(self) -> TensorRTOptions:
        """Raise ``InputError`` for an unusable option; returns ``self``."""
        if self.precision not in PRECISIONS:
            raise InputError(f"precision {self.precision!r} is not supported for tensorrt; "
                             f"choose one of {list(PRECISIONS)}")
        for name in ("max_points", "max_prompts", "workspace_mb", "calibration_limit"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.precision == "int8":
            cache = Path(self.calibration_cache) if self.calibration_cache else None
            if self.calibration_images is None and (cache is None or not cache.is_file()):
                raise InputError("precision int8 needs --calibration-images FOLDER (or an existing "
                                 "--calibration-cache FILE)")
            if self.calibration_images is not None:
                self.batcher()  # lists the images now: a bad folder fails before any build
        elif self.calibration_images or self.calibration_cache:
            raise InputError(f"--calibration-images/--calibration-cache apply to --precision int8, "
                             f"not {self.precision}")
        return self

    def batcher(self) -> Any:
        """The calibration :class:`~exporters.calibration.ImageBatcher` (batch 1)."""
        from ...calibration import ImageBatcher

        return ImageBatcher(self.calibration_images or "", self.processing or ProcessingSpec(),
                            batch_size=1, limit=self.calibration_limit)

    def graph_precision(self, graph: str) -> str:
        """Precision of graph ``graph``: int8 applies to the encoder only."""
        return "fp16" if self.precision == "int8" and graph != "encoder" else self.precision

    def profile(self, graph: GraphSpec) -> dict[str, list[list[int]]]:
        """``{input: [min, opt, max]}`` shapes of every input with a dynamic axis."""
        ranges = {"B": (1, 1, self.max_prompts), "N": (1, min(2, self.max_points), self.max_points)}
        out = {}
        for t in graph.inputs:
            if any(isinstance(d, str) for d in t.shape):
                out[t.name] = [[ranges[d][k] if isinstance(d, str) else d for d in t.shape] for k in range(3)]
        return out

    def feed_dims(self) -> dict[str, int]:
        """``sample_feed`` batch/points inside the profile (parity feeds)."""
        return {"batch": min(2, self.max_prompts), "points": min(3, self.max_points)}

    def parity_specs(self, specs: dict[str, GraphSpec]) -> dict[str, GraphSpec]:
        """``specs`` with the parity bounds of each graph's precision."""
        out = {}
        for name, g in specs.items():
            bounds = REDUCED_BOUNDS.get(self.graph_precision(name))
            out[name] = dataclasses.replace(g, max_abs=bounds[0], rel_l2=bounds[1]) if bounds else g
        return out


def require_tensorrt() -> None:
    """Fail fast, naming what is missing, unless tensorrt and pycuda import and a GPU is visible."""
    from edge_sam_sdk.runtimes import missing_packages

    missing = missing_packages("tensorrt")
    if not missing:
        from edge_sam_sdk.runtimes.tensorrt_backend import device_facts

        try:
            device_facts()
        except EdgeSamError as exc:
            missing.append(f"an NVIDIA GPU ({exc})")
    if missing:
        raise EdgeSamError(f"target tensorrt needs the packages tensorrt and pycuda and an NVIDIA GPU "
                           f"(not found: {', '.join(missing)}); {INSTALL_HINT}")


def export_engine(module: Any, graph: GraphSpec, feed: dict[str, np.ndarray], path: Path,
                  simplify: bool, options: TensorRTOptions, say: Any = None) -> dict[str, Any]:
    """Export ``module`` to ``<graph>.onnx`` beside ``path``, check it, build ``path`` (.engine).

    Returns the facts for the manifest's graph entry: the ONNX export's, the ONNX file and
    its data as ``data_files``, ``engine_precision``, ``profile``, ``fp32_layers`` (how many
    were pinned), ``tensorrt_check`` and the ``trtexec`` arguments.
    """
    import onnx

    from ..onnx.export import export_onnx

    onnx_path = path.with_suffix(".onnx")
    facts = export_onnx(module, graph, feed, onnx_path, simplify=simplify, skipped_optimizers=ORT_FUSIONS,
                        nchwc_rewrites=False)
    model = onnx.load(str(onnx_path), load_external_data=False)
    report = check_model(model)
    if not report["ok"]:
        raise EdgeSamError(f"{onnx_path.name} is not TensorRT-ready: "
                           + format_report(report).replace("\n", " "))
    precision = options.graph_precision(graph.name)
    fp32_layers = fp32_node_names(model) if precision != "fp32" else []
    profile = options.profile(graph)
    calib = None
    if precision == "int8":
        calib = path.parent / CALIBRATION_CACHE
        if options.calibration_cache and Path(options.calibration_cache).is_file():
            calib.write_bytes(Path(options.calibration_cache).read_bytes())
    pinned = build_engine(onnx_path, path, profile, precision, fp32_layers, options, calib)
    if say:
        say(f"built {path.name}: {precision}, {pinned} of {len(fp32_layers)} sensitive layers in fp32")
    args = trtexec_args(onnx_path.name, path.name, profile, precision, fp32_layers, options.workspace_mb,
                        calib.name if calib else None)
    return facts | {"data_files": [onnx_path.name] + facts["data_files"], "onnx_file": onnx_path.name,
                    "engine_precision": precision, "profile": profile, "fp32_layers": pinned,
                    "tensorrt_check": {"ok": True, "shape_tensors": report["shape_tensors"]},
                    "trtexec": args}


def build_engine(onnx_path: Path, engine_path: Path, profile: dict[str, list[list[int]]], precision: str,
                 fp32_layers: list[str], options: TensorRTOptions, calibration_cache: Path | None) -> int:
    """Parse ``onnx_path`` and write the serialized engine to ``engine_path``.

    Returns how many of ``fp32_layers`` were found and pinned to fp32.
    """
    import tensorrt as trt

    from edge_sam_sdk.runtimes.tensorrt_backend import cuda_context

    logger = trt.Logger(trt.Logger.WARNING)
    with cuda_context():
        builder = trt.Builder(logger)
        major = int(str(trt.__version__).split(".")[0])
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EdgeSamError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mb) << 20)
        opt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            opt_profile.set_shape(name, lo, opt, hi)
        if profile:  # static graphs (the encoders) need none
            config.add_optimization_profile(opt_profile)
        pinned = 0
        if precision == "fp32":
            config.clear_flag(trt.BuilderFlag.TF32)  # TF32 matmuls are not fp32 (10-bit mantissa)
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
            pinned = pin_fp32(network, set(fp32_layers), trt)
            if pinned:
                config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        calibrator = None
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            batcher = options.batcher() if options.calibration_images else None
            calibrator = make_calibrator(batcher, calibration_cache or engine_path.parent / CALIBRATION_CACHE)
            config.int8_calibrator = calibrator
            if profile:
                config.set_calibration_profile(opt_profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EdgeSamError(f"TensorRT {trt.__version__} failed to build {engine_path.name} "
                               f"({precision}); see the TensorRT messages above")
        with open(engine_path, "wb") as f:
            f.write(serialized)
        if calibrator is not None:
            calibrator.free()  # its device buffer, while the context is current
    return pinned


def pin_fp32(network: Any, names: set[str], trt: Any) -> int:
    """Pin the layers named ``names`` (the parser names layers after ONNX nodes) to fp32."""
    pinned = 0
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name not in names:
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in floats:
                layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def make_calibrator(batcher: Any, cache: Path) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``batcher``'s batches, caching in ``cache``.

    The batching and cache handling are :class:`~exporters.calibration.CalibrationStream`'s
    (tested without TensorRT); this adds the copy to the GPU.
    """
    import pycuda.driver as cuda
    import tensorrt as trt

    from ...calibration import CalibrationStream

    stream = CalibrationStream(batcher, cache)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.device = cuda.mem_alloc(batcher.nbytes) if batcher is not None else None

        def get_batch_size(self) -> int:
            return stream.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = stream.next_batch()  # for the encoder's one input, "image"
            if batch is None or self.device is None:
                return None
            cuda.memcpy_htod(self.device, batch)
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            return stream.read_cache()

        def write_calibration_cache(self, cache: Any) -> None:
            stream.write_cache(bytes(cache))

        def free(self) -> None:
            if self.device is not None:
                self.device.free()
                self.device = None

    return EntropyCalibrator()


def trtexec_args(onnx_file: str, engine_file: str, profile: dict[str, list[list[int]]], precision: str,
                 fp32_layers: list[str], workspace_mb: int, calibration_cache: str | None) -> list[str]:
    """The ``trtexec`` arguments that build the same engine (TensorRT 8.6 and 10.x flags)."""
    args = ["trtexec", f"--onnx={onnx_file}", f"--saveEngine={engine_file}",
            f"--memPoolSize=workspace:{int(workspace_mb)}", "--skipInference"]
    if precision == "fp32":
        args.append("--noTF32")
    for flag, k in (("minShapes", 0), ("optShapes", 1), ("maxShapes", 2)):
        if profile:
            args.append(f"--{flag}=" + ",".join(f"{n}:{'x'.join(str(d) for d in s[k])}"
                                                 for n, s in profile.items()))
    if precision in ("fp16", "int8"):
        args.append("--fp16")
    if precision == "int8":
        args += ["--int8", f"--calib={calibration_cache}"]
    names = [n for n in fp32_layers if "," not in n and ":" not in n]  # trtexec's spec separators
    if precision != "fp32" and names:
        args += ["--precisionConstraints=obey", "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in names),
                 "--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in names)]
    return args


def write_trtexec_script(folder: Path, commands: dict[str, list[str]]) -> str:
    """Write ``trtexec.sh`` (one ``trtexec`` line per graph) into ``folder``; returns its name."""
    lines = ["#!/bin/sh",
             "# Rebuild this bundle's TensorRT engines on the device that runs them (engines only run",
             "# with the TensorRT version and GPU they were built with). Needs trtexec: on Jetson it is",
             "# /usr/src/tensorrt/bin/trtexec (TRTEXEC=/usr/src/tensorrt/bin/trtexec sh trtexec.sh).",
             "# Then record the new engines in manifest.json: edgesam trt-adopt .",
             "set -e", 'cd "$(dirname "$0")"', 'TRTEXEC="${TRTEXEC:-trtexec}"']
    for name, args in commands.items():
        lines += [f"# {name}", '"$TRTEXEC" ' + shlex.join(args[1:])]
    (folder / TRTEXEC_SCRIPT).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return TRTEXEC_SCRIPT


def build_facts(folder: Path, manifest: dict[str, Any], options: TensorRTOptions) -> dict[str, Any]:
    """The manifest's ``"tensorrt"`` entry (where and how the engines were built); writes
    ``trtexec.sh`` from the graph entries' ``trtexec`` arguments."""
    from edge_sam_sdk.runtimes.tensorrt_backend import device_facts

    commands = {n: g["trtexec"] for n, g in manifest["graphs"].items()}
    calib = folder / CALIBRATION_CACHE
    return device_facts() | {
        "precision": options.precision, "max_points": options.max_points,
        "max_prompts": options.max_prompts, "workspace_mb": options.workspace_mb,
        "calibration_cache": CALIBRATION_CACHE if calib.exists() else None,
        "trtexec": write_trtexec_script(folder, commands),
    }
