"""SAM 2.1 video mode: the four stateless per-frame graphs (torch modules, export-friendly).

The host (``edge_sam_sdk.video``) owns the memory bank and calls, per frame and object:

1. :class:`Sam2VideoEncoderGraph` once per frame: image -> decoder features and the raw
   64x64 feature (``vision_features``, no ``no_mem_embed``) that memory paths use.
2. :class:`MemoryAttentionGraph` (not on an object's initial conditioning frame, which uses
   ``image_embeddings`` instead): the frame feature attends to ``S`` spatial memory slots and
   ``P`` object-pointer slots; slots whose ``*_valid`` is 0 drop out exactly.
3. :class:`Sam2VideoDecoderGraph`: SAM 2's prompt encoder + mask decoder, plus each mask
   token's object pointer.
4. :class:`MemoryEncoderGraph`: the chosen low-res mask + the raw feature -> memory features.

Every shape is static once exported; the torch modules also take any ``S >= 1``, ``P >= 1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .layers import interpolate
from .sam2_memory import sine_1d, sine_position_encoding, slot_key_mask

if TYPE_CHECKING:
    from .sam2 import Sam2Model

GRID = 64  #: tokens per side of the 64x64 feature map (1024 input, stride 16)


class Sam2VideoEncoderGraph(nn.Module):
    """``image`` ``1x3x1024x1024`` -> ``image_embeddings`` ``1x256x64x64`` (+ ``no_mem_embed``),
    ``high_res_feats_0`` ``1x32x256x256``, ``high_res_feats_1`` ``1x64x128x128``,
    ``vision_features`` ``1x256x64x64`` (the raw FPN level 2)."""

    def __init__(self, model: Sam2Model):
        super().__init__()
        self.image_encoder = model.image_encoder
        self.conv_s0 = model.sam_mask_decoder.conv_s0
        self.conv_s1 = model.sam_mask_decoder.conv_s1
        self.no_mem_embed = model.no_mem_embed

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        level0, level1, level2 = self.image_encoder(image)
        embeddings = level2 + self.no_mem_embed.reshape(1, -1, 1, 1)
        return embeddings, self.conv_s0(level0), self.conv_s1(level1), level2


class MemoryAttentionGraph(nn.Module):
    """Memory-conditioned frame feature (``_prepare_memory_conditioned_features``).

    Inputs: ``vision_features`` ``1x256x64x64``; ``memory_features`` ``Sx64x64x64`` (the bank's
    bfloat16 values as float32); ``memory_tpos`` ``S`` int64 (index into ``maskmem_tpos_enc``:
    6 for conditioning frames, ``t_rel - 1`` for the others); ``memory_valid`` ``S`` (1 used,
    0 empty); ``obj_ptrs`` ``Px256``; ``obj_ptr_pos`` ``P`` (temporal distance divided by
    ``max_obj_ptrs - 1``); ``obj_ptr_valid`` ``P``. Output ``pix_feat_with_mem`` ``1x256x64x64``.
    """

    curr_pos: torch.Tensor
    memory_pos: torch.Tensor

    def __init__(self, model: Sam2Model):
        super().__init__()
        self.memory_attention = model.memory_attention
        self.maskmem_tpos_enc = model.maskmem_tpos_enc
        self.obj_ptr_tpos_proj = model.obj_ptr_tpos_proj
        self.register_buffer("curr_pos", sine_position_encoding(256, GRID, GRID).flatten(2).transpose(1, 2),
                             persistent=False)
        self.register_buffer("memory_pos", sine_position_encoding(64, GRID, GRID).flatten(2).transpose(1, 2),
                             persistent=False)

    def forward(self, vision_features: torch.Tensor, memory_features: torch.Tensor,
                memory_tpos: torch.Tensor, memory_valid: torch.Tensor, obj_ptrs: torch.Tensor,
                obj_ptr_pos: torch.Tensor, obj_ptr_valid: torch.Tensor) -> torch.Tensor:
        s, mem_dim = memory_features.shape[0], memory_features.shape[1]
        p, n = obj_ptrs.shape[0], GRID * GRID
        split = obj_ptrs.shape[1] // mem_dim
        spatial = memory_features.flatten(2).transpose(1, 2)  # S x N x 64
        tpos = self.maskmem_tpos_enc.reshape(-1, mem_dim)[memory_tpos]  # S x 64
        spatial_pos = self.memory_pos + tpos.unsqueeze(1)  # S x N x 64
        ptr_tokens = obj_ptrs.reshape(p * split, mem_dim)
        ptr_pos = self.obj_ptr_tpos_proj(sine_1d(obj_ptr_pos, obj_ptrs.shape[1]))
        ptr_pos = ptr_pos.repeat_interleave(split, dim=0)
        memory = torch.cat([spatial.reshape(1, s * n, mem_dim), ptr_tokens.unsqueeze(0)], dim=1)
        memory_pos = torch.cat([spatial_pos.reshape(1, s * n, mem_dim), ptr_pos.unsqueeze(0)], dim=1)
        key_mask = slot_key_mask(memory_valid, n, obj_ptr_valid, split)
        curr = vision_features.flatten(2).transpose(1, 2)
        out = self.memory_attention(curr, self.curr_pos, memory, memory_pos, p * split, key_mask)
        return out.transpose(1, 2).reshape(vision_features.shape)


class Sam2VideoDecoderGraph(nn.Module):
    """The ``sam2`` decoder graph plus ``obj_ptrs`` ``Bx4x256``: ``obj_ptr_proj`` of every mask
    token, replaced by ``no_obj_ptr`` where ``object_score_logits <= 0`` (``fixed_no_obj_ptr``).

    Inputs as :class:`~.sam2.Sam2DecoderGraph` (``image_embeddings`` is the memory-conditioned
    feature, or the encoder's ``image_embeddings`` on an initial conditioning frame).
    """

    def __init__(self, model: Sam2Model):
        super().__init__()
        self.prompt_encoder = model.sam_prompt_encoder
        self.mask_decoder = model.sam_mask_decoder
        self.obj_ptr_proj = model.obj_ptr_proj
        self.no_obj_ptr = model.no_obj_ptr

    def forward(self, image_embeddings: torch.Tensor, high_res_feats_0: torch.Tensor,
                high_res_feats_1: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,
                mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels)
        dense = self.prompt_encoder.embed_mask(mask_input, has_mask_input)
        masks, iou, score, tokens = self.mask_decoder.decode(
            image_embeddings, self.prompt_encoder.dense_pe(), sparse, dense, high_res_feats_0,
            high_res_feats_1)
        present = (score > 0).to(tokens.dtype).unsqueeze(-1)  # B x 1 x 1
        ptrs = present * self.obj_ptr_proj(tokens) + (1 - present) * self.no_obj_ptr
        return masks, iou, score, ptrs


class MemoryEncoderGraph(nn.Module):
    """``_encode_new_memory``: ``vision_features`` ``1x256x64x64``, the chosen ``mask_logits``
    ``1x1x256x256``, ``binarize`` ``1`` (1: mask from prompts, ``logits > 0``; 0: sigmoid),
    ``object_score_logits`` ``1x1`` -> ``maskmem_features`` ``1x64x64x64`` (float32; the bank
    keeps its bfloat16 rounding). The mask is upsampled bilinearly to 1024x1024 and scaled
    ``* 20 - 10``; ``no_obj_embed_spatial`` is added where the object score is <= 0."""

    def __init__(self, model: Sam2Model, image_size: int = 1024):
        super().__init__()
        self.memory_encoder = model.memory_encoder
        self.no_obj_embed_spatial = model.no_obj_embed_spatial
        self.image_size = image_size

    def forward(self, vision_features: torch.Tensor, mask_logits: torch.Tensor, binarize: torch.Tensor,
                object_score_logits: torch.Tensor) -> torch.Tensor:
        high = interpolate(mask_logits, (self.image_size, self.image_size), "bilinear")
        b = binarize.reshape(1, 1, 1, 1)
        mask = b * (high > 0).to(high.dtype) + (1 - b) * torch.sigmoid(high)
        feats = self.memory_encoder(vision_features, mask * 20.0 - 10.0)
        absent = (object_score_logits <= 0).to(feats.dtype).reshape(-1, 1, 1, 1)
        return feats + absent * self.no_obj_embed_spatial.reshape(1, -1, 1, 1)


def video_graphs(model: Sam2Model) -> dict[str, nn.Module]:
    """The four video graphs of ``model``, in eval mode, by bundle name (SAM 2.1; EdgeTAM's
    are :func:`.edgetam.video_graphs`: ``VideoSpec.graphs`` of the variant names them)."""
    return {"video_encoder": Sam2VideoEncoderGraph(model).eval(),
            "memory_attention": MemoryAttentionGraph(model).eval(),
            "video_decoder": Sam2VideoDecoderGraph(model).eval(),
            "memory_encoder": MemoryEncoderGraph(model).eval()}
