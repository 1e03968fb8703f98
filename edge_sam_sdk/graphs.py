"""Declarative per-graph export specs: names, shapes, dynamic axes, dtypes, tolerance.

One spec per graph per decoder kind; exporters, the manifest, the predictor and the
parity checks all read these instead of repeating names. Dimensions given as strings
(``"B"``, ``"N"``) are dynamic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .registry import VariantSpec
from .testing import (
    TAG_EMBEDDINGS,
    TAG_ENCODER_INPUT,
    TAG_HIGH_RES_0,
    TAG_HIGH_RES_1,
    TAG_MASK_INPUT,
    synthetic_array,
)

Dim = int | str


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}


@dataclass(frozen=True)
class GraphSpec:
    """One exported graph. ``max_abs`` is relative to ``max(1, max |reference|)``."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_abs: float = 1e-3
    rel_l2: float = 1e-4
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {t.name: t.dynamic_axes() for t in self.inputs + self.outputs}
        return {k: v for k, v in axes.items() if v}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        return d


@dataclass(frozen=True)
class DecoderKind:
    """A decoder graph contract, as data: what it takes and returns beyond SAM's core.

    Every kind takes ``image_embeddings``, ``point_coords`` ``BxNx2`` and ``point_labels``
    ``BxN`` and returns ``low_res_masks`` ``BxMxLxL`` and ``iou_predictions`` ``BxM`` (every
    mask token; the host selects). Beyond that:

    Attributes:
        mask_input: takes ``mask_input`` ``Bx1xLxL`` and ``has_mask_input`` ``B``.
        fixed_points: ``N`` is fixed at ``processing.max_points`` (EfficientSAM: 6).
        encoder_features: further encoder outputs the decoder takes (SAM 2's high-res maps).
        extra_outputs: further decoder outputs (SAM 2's ``object_score_logits``).
        single_fallback: SAM 2's dynamic multimask: a single-mask request returns the best
            multimask token when the single token's stability is below a threshold.
        image_projections: the encoder also returns the decoder's first-layer image-side
            projections (:data:`IMAGE_PROJECTIONS`), computed once per image instead of once
            per prompt; the decoder takes them after ``image_embeddings``.
    """

    name: str
    mask_input: bool = True
    fixed_points: bool = False
    encoder_features: tuple[TensorSpec, ...] = ()
    extra_outputs: tuple[TensorSpec, ...] = ()
    single_fallback: dict[str, float] | None = None
    image_projections: bool = False


#: The ``sam`` decoder's per-image inputs (layer 0's image-side projections, ``1xHWx(C/2)``).
IMAGE_PROJECTIONS = ("layer0_image_keys", "layer0_image_values", "layer0_image_queries")


DECODER_KINDS: dict[str, DecoderKind] = {
    "sam": DecoderKind("sam", image_projections=True),
    "efficient_sam": DecoderKind("efficient_sam", mask_input=False, fixed_points=True),
    "sam2": DecoderKind(
        "sam2",
        encoder_features=(TensorSpec("high_res_feats_0", (1, 32, 256, 256)),
                          TensorSpec("high_res_feats_1", (1, 64, 128, 128))),
        extra_outputs=(TensorSpec("object_score_logits", ("B", 1)),),
        single_fallback={"stability_delta": 0.05, "stability_thresh": 0.98},
    ),
}


def decoder_kind(variant: VariantSpec) -> DecoderKind:
    try:
        return DECODER_KINDS[variant.decoder_kind]
    except KeyError:
        raise ValueError(f"unknown decoder kind {variant.decoder_kind!r}; "
                         f"known: {sorted(DECODER_KINDS)}") from None


def encoder_features(variant: VariantSpec) -> tuple[TensorSpec, ...]:
    """The encoder outputs beyond ``image_embeddings`` that the decoder takes, in order."""
    kind = decoder_kind(variant)
    c, h, w = variant.embedding_shape
    projections = tuple(TensorSpec(n, (1, h * w, c // 2)) for n in IMAGE_PROJECTIONS)
    return (projections if kind.image_projections else ()) + kind.encoder_features


def encoder_spec(variant: VariantSpec) -> GraphSpec:
    """``image`` ``1x3xSxS`` -> ``image_embeddings`` (+ the decoder kind's encoder features)."""
    s = variant.processing.input_size
    return GraphSpec(
        name="encoder",
        inputs=(TensorSpec("image", (1, 3, s, s)),),
        outputs=(TensorSpec("image_embeddings", (1,) + tuple(variant.embedding_shape)),)
        + encoder_features(variant),
    )


def decoder_spec(variant: VariantSpec) -> GraphSpec:
    kind = decoder_kind(variant)
    c, h, w = variant.embedding_shape
    low = variant.processing.low_res_size
    m = variant.num_mask_tokens
    n: Dim = variant.processing.max_points if kind.fixed_points else "N"
    masks = (TensorSpec("mask_input", ("B", 1, low, low)), TensorSpec("has_mask_input", ("B",)))
    selection: dict[str, Any] = {"multimask": list(variant.multimask_tokens),
                                 "single": list(variant.single_mask_tokens)}
    if kind.single_fallback:
        selection["single_fallback"] = dict(kind.single_fallback)
    return GraphSpec(
        name="decoder",
        inputs=(TensorSpec("image_embeddings", (1, c, h, w)),) + encoder_features(variant)
        + (TensorSpec("point_coords", ("B", n, 2)), TensorSpec("point_labels", ("B", n)))
        + (masks if kind.mask_input else ()),
        outputs=(TensorSpec("low_res_masks", ("B", m, low, low)),
                 TensorSpec("iou_predictions", ("B", m))) + kind.extra_outputs,
        # Host-side token selection, as the variant's official predictor does.
        extra={"mask_selection": selection,
               "from_encoder": ["image_embeddings"] + [t.name for t in encoder_features(variant)]},
    )


def graph_specs(variant: VariantSpec) -> dict[str, GraphSpec]:
    return {"encoder": encoder_spec(variant), "decoder": decoder_spec(variant)}


def sample_feed(graph: GraphSpec, seed: int = 0, batch: int = 2, points: int = 3) -> dict[str, np.ndarray]:
    """Deterministic inputs for export tracing and parity checks (valid prompt values)."""
    dims = {"B": batch, "N": points}
    feed: dict[str, np.ndarray] = {}
    for t in graph.inputs:
        shape = tuple(dims[d] if isinstance(d, str) else d for d in t.shape)
        if t.name == "image":
            feed[t.name] = synthetic_array(TAG_ENCODER_INPUT, shape, seed, -2.2, 2.7)
        elif t.name == "image_embeddings":
            feed[t.name] = synthetic_array(TAG_EMBEDDINGS, shape, seed, -1.0, 1.0)
        elif t.name == "mask_input":
            feed[t.name] = synthetic_array(TAG_MASK_INPUT, shape, seed, -8.0, 8.0)
        elif t.name == "point_coords":
            feed[t.name] = synthetic_array(0xF1, shape, seed, 0.0, 1023.0)
        elif t.name == "point_labels":
            labels = np.array([1, 0, 2, 3, -1], dtype=np.float32)
            feed[t.name] = np.resize(labels, shape).astype(np.float32)
        elif t.name == "has_mask_input":
            feed[t.name] = (np.arange(shape[0]) % 2).astype(np.float32)
        elif t.name in IMAGE_PROJECTIONS:
            feed[t.name] = synthetic_array(0xF3 + IMAGE_PROJECTIONS.index(t.name), shape, seed, -1.0, 1.0)
        elif t.name.startswith("high_res_feats_"):
            tag = TAG_HIGH_RES_0 if t.name.endswith("0") else TAG_HIGH_RES_1
            feed[t.name] = synthetic_array(tag, shape, seed, -1.0, 1.0)
        else:
            feed[t.name] = synthetic_array(0xF2, shape, seed, -1.0, 1.0)
    return feed


def parity(reference: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Graph-parity figures of ``actual`` against ``reference`` (GOLDEN.md's bound)."""
    ref = np.asarray(reference, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
    max_abs = float(np.abs(ref - act).max()) if ref.size else 0.0
    rel_l2 = float(np.linalg.norm(ref - act) / max(float(np.linalg.norm(ref)), 1e-12))
    return {"max_abs": max_abs, "max_abs_rel": max_abs / scale, "rel_l2": rel_l2}


def parity_ok(figures: dict[str, float], graph: GraphSpec) -> bool:
    return figures["max_abs_rel"] <= graph.max_abs and figures["rel_l2"] <= graph.rel_l2


def video_graph_specs(variant: VariantSpec, spatial_slots: Dim = "S",
                      ptr_slots: Dim = "P") -> dict[str, GraphSpec]:
    """SAM 2 video mode's four stateless graphs (``docs/video.md``); ``S`` spatial memory slots
    and ``P`` object-pointer slots (static once exported: ``num_maskmem - 1`` recent frames
    plus the conditioning frames; ``max_obj_ptrs - 1`` plus the conditioning frames), each
    spatial slot of ``variant.video.memory_shape``."""
    if variant.video is None:
        raise ValueError(f"{variant.name} has no video mode (VariantSpec.video is None)")
    slot = variant.video.memory_shape
    s = variant.processing.input_size
    c, h, w = variant.embedding_shape
    feats = (TensorSpec("image_embeddings", (1, c, h, w)),) + encoder_features(variant)
    vision = TensorSpec("vision_features", (1, c, h, w))
    dec = decoder_spec(variant)
    specs = {
        "video_encoder": GraphSpec("video_encoder", (TensorSpec("image", (1, 3, s, s)),), feats + (vision,)),
        "memory_attention": GraphSpec(
            "memory_attention",
            (vision, TensorSpec("memory_features", (spatial_slots, *slot)),
             TensorSpec("memory_tpos", (spatial_slots,), "int64"),
             TensorSpec("memory_valid", (spatial_slots,)), TensorSpec("obj_ptrs", (ptr_slots, c)),
             TensorSpec("obj_ptr_pos", (ptr_slots,)), TensorSpec("obj_ptr_valid", (ptr_slots,))),
            (TensorSpec("pix_feat_with_mem", (1, c, h, w)),)),
        "video_decoder": GraphSpec(
            "video_decoder", dec.inputs,
            dec.outputs + (TensorSpec("obj_ptrs", ("B", variant.num_mask_tokens, c)),)),
        "memory_encoder": GraphSpec(
            "memory_encoder",
            (vision, TensorSpec("mask_logits", (1, 1, 4 * h, 4 * w)), TensorSpec("binarize", (1,)),
             TensorSpec("object_score_logits", (1, 1))),
            (TensorSpec("maskmem_features", (1, *slot)),)),
    }
    unused = variant.video.unused_inputs
    return {n: replace(g, inputs=tuple(t for t in g.inputs if t.name not in unused))
            for n, g in specs.items()}
