"""Variant registry: one declarative :class:`VariantSpec` per supported model.

Specs are pure data (no torch import), so ``edgesam list`` and the runtime path never
load a framework. The torch model of a variant is named by ``builder``
(``"module:function"``) and imported only when exporting.

The built-in variants (:mod:`.variants`) are registered when ``edge_sam_sdk`` is imported.
Register a variant with the decorator, as timm registers models::

    @register_variant
    def mobile_sam() -> VariantSpec:
        return VariantSpec(name="mobile_sam", ...)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import UnknownVariantError
from .processing import ProcessingSpec


@dataclass(frozen=True)
class CheckpointPart:
    """One file of a checkpoint that the official code assembles from several files.

    ``keep`` lists the model-key prefixes taken from this file (empty: every key);
    ``wrapper`` and ``prefix`` are as in :class:`CheckpointSpec`.
    """

    file: str
    wrapper: str | None = None
    prefix: str = ""
    keep: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointSpec:
    """Where users get an official checkpoint and how its state dict is stored.

    ``files`` are the official file names (alternatives of one checkpoint, or NanoSAM's
    parts); ``url`` is the page that publishes them. ``downloads`` maps a file name to its
    direct download URL (a file without one, e.g. Google-Drive-only SlimSAM, is fetched by
    hand); ``zipped`` names files whose download is a zip archive holding that file
    (EfficientSAM ViT-S). ``sha256`` and ``size`` hold the official file's digest and
    byte count where a source records them (absent: unknown, never guessed).
    ``wrapper`` is the key under which the file nests the state dict (``None``: the file
    is the state dict itself). ``prefix`` is prepended to every file key to reach the
    model's key names (``""`` when they already match). A variant whose weights come
    from several files (NanoSAM) lists them as ``parts``, in the order users pass them.
    ``ignore`` lists key prefixes the official loader tolerates and inference never uses
    (EdgeSAM's optional RPN head), dropped before the strict key check. With
    ``wrapper_optional`` the file may hold the state dict under ``wrapper`` or at top level
    (EfficientViT-SAM's loader accepts both).
    """

    files: tuple[str, ...]
    url: str
    wrapper: str | None = None
    prefix: str = ""
    sha256: dict[str, str] = field(default_factory=dict)
    parts: tuple[CheckpointPart, ...] = ()
    ignore: tuple[str, ...] = ()
    wrapper_optional: bool = False
    downloads: dict[str, str] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    zipped: tuple[str, ...] = ()

    def official_files(self) -> tuple[str, ...]:
        """The files ``--checkpoint official`` stands for: every part of an assembled
        checkpoint, else the first downloadable alternative (else the first file)."""
        if self.parts:
            return tuple(p.file for p in self.parts)
        return (next((f for f in self.files if f in self.downloads), self.files[0]),)


@dataclass(frozen=True)
class VideoSpec:
    """A variant's video mode (``docs/video.md``): what differs between the memory models.

    ``memory_shape``: one memory slot as the memory encoder writes it and the memory-attention
    graph reads it (SAM 2.1: ``(64, 64, 64)``, 64 channels on the 64x64 grid; EdgeTAM:
    ``(512, 64)``, the spatial perceiver's 512 tokens of 64 channels).
    ``reuse_prompted_frames``: the official predictor's propagation yields a prompted
    non-conditioning frame's stored output instead of tracking that frame again (EdgeTAM's
    batched legacy predictor). ``unused_inputs``: inputs of SAM 2.1's graph contract that the
    model has no use for, so its graphs do not take them (EdgeTAM: ``obj_ptr_pos``, pointers
    carry no temporal position; ``object_score_logits`` of the memory encoder, no spatial
    no-object embedding). ``graphs``: ``"module:function"`` returning the four torch graphs of
    a model (export side only).
    """

    memory_shape: tuple[int, ...] = (64, 64, 64)
    reuse_prompted_frames: bool = False
    unused_inputs: tuple[str, ...] = ()
    graphs: str = "edge_sam_sdk.exporters.models.sam2_video:video_graphs"

    def build_graphs(self, model: Any) -> Any:
        """``{graph name: torch module}`` of ``model`` (needs the ``export`` extra)."""
        module_name, func_name = self.graphs.split(":")
        return getattr(importlib.import_module(module_name), func_name)(model)


@dataclass(frozen=True)
class VariantSpec:
    """Everything the SDK needs to know about one variant.

    Attributes:
        name: registry key, e.g. ``"mobile_sam"``.
        family: model family (``"sam"``, ``"mobile_sam"``, ...).
        checkpoint: official checkpoint files and wrapping.
        license: license of the official weights/code.
        builder: ``"module:function"`` returning the torch ``SamModel`` (export side only).
        processing: pre/post-processing (input size, mean/std, resize rule, mask size);
            default: SAM's (1024 longest side, Pillow bilinear, SAM mean/std).
        decoder_kind: decoder graph contract, a key of ``graphs.DECODER_KINDS``:
            ``"sam"`` (points, labels, mask input in; 4 masks + 4 IoU scores out),
            ``"efficient_sam"`` (6 points, no mask input), ``"sam2"`` (also takes the
            encoder's high-res maps, also returns an object score).
        embedding_shape: ``(C, H, W)`` of the encoder's ``image_embeddings`` (batch 1).
        targets: export targets supported for this variant (``tensorrt`` builds engines from
            the ONNX graphs, so it needs ``onnx`` graphs that pass ``exporters.targets.tensorrt.readiness``).
        num_mask_tokens: mask tokens of the decoder (SAM: 4; token 0 is the single mask).
        single_mask_tokens: tokens returned when one mask is asked for (SAM: token 0;
            TinySAM's official decoder always returns tokens 1..3).
        multimask_tokens: tokens returned for ``multimask_output=True`` (SAM: 1..3;
            NanoSAM's official engine returns all four).
        video: the variant's video mode (None: image mode only).
    """

    name: str
    family: str
    checkpoint: CheckpointSpec
    license: str
    builder: str
    processing: ProcessingSpec = field(default_factory=ProcessingSpec)
    decoder_kind: str = "sam"
    embedding_shape: tuple[int, int, int] = (256, 64, 64)
    description: str = ""
    #: tensorrt engines are built from the ONNX graphs
    targets: tuple[str, ...] = ("onnx", "tensorrt", "coreml", "tflite")
    num_mask_tokens: int = 4
    single_mask_tokens: tuple[int, ...] = (0,)
    multimask_tokens: tuple[int, ...] = (1, 2, 3)
    video: VideoSpec | None = None

    def build_model(self) -> Any:
        """Import and call the torch builder (needs the ``export`` extra)."""
        module_name, func_name = self.builder.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, func_name)()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["processing"] = self.processing.to_dict()
        return d


_REGISTRY: dict[str, VariantSpec] = {}


def register_variant(fn: Callable[[], VariantSpec]) -> Callable[[], VariantSpec]:
    """Decorator: call ``fn`` once and register the spec it returns under its name."""
    spec = fn()
    if spec.name in _REGISTRY:
        raise ValueError(f"variant {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return fn


def get_variant(name: str) -> VariantSpec:
    """The spec of variant ``name``; an unknown name raises :class:`UnknownVariantError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownVariantError(f"unknown variant {name!r}; known variants: {known}") from None


def list_variants() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_REGISTRY)
