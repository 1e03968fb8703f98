"""One tracking step of one object on one frame, over the four stateless video graphs.

The graphs (any :class:`edge_sam_sdk.runtimes.protocol.Backend`, numpy in and out):

* ``video_encoder``: ``image`` -> ``image_embeddings``, ``high_res_feats_0/1``, ``vision_features``
* ``memory_attention``: ``vision_features`` + memory slots -> ``pix_feat_with_mem``
* ``video_decoder``: ``image_embeddings`` (the conditioned feature), high-res maps, prompts
  -> ``low_res_masks`` ``1x4x256x256``, ``iou_predictions`` ``1x4``, ``object_score_logits``
  ``1x1``, ``obj_ptrs`` ``1x4x256``
* ``memory_encoder``: ``vision_features``, ``mask_logits`` ``1x1x256x256``, ``binarize`` ``1``,
  ``object_score_logits`` -> ``maskmem_features`` ``1x64x64x64``

:meth:`VideoEngine.track_step` is the official ``track_step`` with the host's choices: the
multimask rule (0 or 1 prompt points: tokens 1..3, highest IoU, whose token also gives the
pointer), the single-mask stability fallback (pointer from token 0), -1024 logits when the
object score is <= 0, and bfloat16 storage of the memory. Hole filling is off (the official
CPU path).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..processing import select_tokens
from ..registry import VariantSpec
from ..runtimes.protocol import Backend
from .bank import FrameOutput, ObjectBank, memory_feed, select_memory, to_bf16_bits

NO_OBJ_SCORE = -1024.0
GRAPHS = ("video_encoder", "memory_attention", "video_decoder", "memory_encoder")


@dataclass(frozen=True)
class VideoConfig:
    """The video contract's numbers (``manifest["video"]`` of a bundle).

    ``spatial_slots`` / ``ptr_slots``: the static slot counts of the memory-attention graph
    (None: the graph takes any count, as the torch reference does). ``max_cond``: conditioning
    frames attended (-1: all, the official default; a static graph needs
    ``spatial_slots - (num_maskmem - 1)``). ``memory_shape`` / ``reuse_prompted_frames``: the
    variant's :class:`~edge_sam_sdk.registry.VideoSpec` (one memory slot's shape; whether
    propagation yields a prompted non-conditioning frame's stored output).
    """

    image_size: int = 1024
    num_maskmem: int = 7
    max_obj_ptrs: int = 16
    max_cond: int = -1
    spatial_slots: int | None = None
    ptr_slots: int | None = None
    stability_delta: float = 0.05
    stability_thresh: float = 0.98
    multimask_max_points: int = 1
    memory_shape: tuple[int, ...] = (64, 64, 64)
    reuse_prompted_frames: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"memory_shape": list(self.memory_shape)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VideoConfig:
        """From a manifest's ``"video"`` section (keys this SDK does not know are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        if "memory_shape" in kw:
            kw["memory_shape"] = tuple(int(v) for v in kw["memory_shape"])
        return cls(**kw)

    @classmethod
    def for_variant(cls, variant: VariantSpec, **kw: Any) -> VideoConfig:
        """The official predictor's numbers for ``variant``'s video mode, with ``kw`` replaced."""
        if variant.video is None:
            from ..errors import EdgeSamError

            raise EdgeSamError(f"{variant.name} has no video mode; video mode is for the SAM 2.1 "
                               "variants and edgetam")
        return cls(memory_shape=variant.video.memory_shape,
                   reuse_prompted_frames=variant.video.reuse_prompted_frames, **kw)


@dataclass
class FrameFeatures:
    """The video encoder's outputs for one frame (``1x...`` float32 arrays by name)."""

    arrays: dict[str, np.ndarray]


class VideoEngine:
    """The per-frame steps over ``graphs`` (names in :data:`GRAPHS`)."""

    def __init__(self, graphs: Mapping[str, Backend], config: VideoConfig | None = None):
        missing = [g for g in GRAPHS if g not in graphs]
        if missing:
            from ..errors import BundleError

            raise BundleError(f"video graphs missing: {missing}")
        self.graphs = dict(graphs)
        self.config = config or VideoConfig()

    def run(self, graph: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``graph`` on the inputs of ``feed`` it takes (a variant's graphs may leave out
        inputs of the contract it has no use for: ``VideoSpec.unused_inputs``)."""
        backend = self.graphs[graph]
        return backend.run({n: feed[n] for n in backend.inputs})

    def encode_frame(self, image: np.ndarray) -> FrameFeatures:
        """``1x3xSxS`` normalized frame -> its features."""
        return FrameFeatures(self.run("video_encoder", {"image": image}))

    def memory_encode(self, feats: FrameFeatures, low_res: np.ndarray, score: float,
                      from_points: bool) -> np.ndarray:
        """Memory features of a frame's chosen mask, as bfloat16 bits ``64x64x64``."""
        out = self.run("memory_encoder", {
            "vision_features": feats.arrays["vision_features"],
            "mask_logits": np.ascontiguousarray(low_res, np.float32).reshape(1, 1, *low_res.shape[-2:]),
            "binarize": np.array([1.0 if from_points else 0.0], np.float32),
            "object_score_logits": np.array([[score]], np.float32)})
        return to_bf16_bits(out["maskmem_features"][0])

    def conditioned(self, feats: FrameFeatures, bank: ObjectBank, frame: int, is_init_cond: bool,
                    reverse: bool, num_frames: int | None) -> np.ndarray:
        """The decoder's image input: ``image_embeddings`` on an initial conditioning frame,
        else the memory-attention output."""
        if is_init_cond:
            return feats.arrays["image_embeddings"]
        c = self.config
        sel = select_memory(bank, frame, reverse, num_frames, c.num_maskmem, c.max_obj_ptrs, c.max_cond)
        feed = memory_feed(sel, c.spatial_slots, c.ptr_slots)
        feed["vision_features"] = feats.arrays["vision_features"]
        return self.run("memory_attention", feed)["pix_feat_with_mem"]

    def track_step(self, feats: FrameFeatures, bank: ObjectBank, frame: int, *, is_init_cond: bool,
                   points: tuple[np.ndarray, np.ndarray] | None, mask_logits: np.ndarray | None,
                   reverse: bool, num_frames: int | None, run_mem_encoder: bool) -> FrameOutput:
        """Decode ``frame`` for one object. ``points``: model-frame coords ``Nx2`` and labels
        ``N`` (None on tracking frames); ``mask_logits``: the frame's previous ``1x1x256x256``
        logits (corrections; clamped to [-32, 32] here)."""
        pix = self.conditioned(feats, bank, frame, is_init_cond, reverse, num_frames)
        if points is None:
            # Official: one (0, 0) padding point; the prompt encoder appends its own below.
            coords, labels = np.zeros((1, 2), np.float32), np.full(1, -1.0, np.float32)
        else:
            coords, labels = points
        n_points = 0 if points is None else len(points[1])
        coords = np.concatenate([coords, np.zeros((1, 2), np.float32)])[None].astype(np.float32)
        labels = np.concatenate([labels, [-1.0]])[None].astype(np.float32)
        has_mask = mask_logits is not None
        mask = np.zeros((1, 1, 256, 256), np.float32)
        if mask_logits is not None:
            mask = np.clip(mask_logits, -32.0, 32.0).reshape(1, 1, 256, 256).astype(np.float32)
        out = self.run("video_decoder", {
            "image_embeddings": pix, "high_res_feats_0": feats.arrays["high_res_feats_0"],
            "high_res_feats_1": feats.arrays["high_res_feats_1"], "point_coords": coords,
            "point_labels": labels, "mask_input": mask,
            "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32)})
        masks, ious = out["low_res_masks"], out["iou_predictions"]
        score = float(out["object_score_logits"].reshape(-1)[0])
        multimask = n_points <= self.config.multimask_max_points
        if multimask:
            token = 1 + int(np.argmax(ious[0, 1:]))
            ptr_token = token
        else:
            fallback = {"stability_delta": self.config.stability_delta,
                        "stability_thresh": self.config.stability_thresh}
            token = int(select_tokens(masks, ious, [0], fallback, [1, 2, 3])[0, 0])
            ptr_token = 0
        low_res = masks[:, token:token + 1].astype(np.float32)
        if score <= 0:
            low_res = np.full_like(low_res, NO_OBJ_SCORE)
        result = FrameOutput(low_res=np.ascontiguousarray(low_res),
                             obj_ptr=out["obj_ptrs"][0, ptr_token].copy(), score=score)
        if run_mem_encoder:
            result.maskmem = self.memory_encode(feats, low_res, score, from_points=points is not None)
        return result
