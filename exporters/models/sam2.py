"""SAM 2.1: the model (image and video keys), the mask decoder, image-mode export graphs.

Key names and order equal the official ``SAM2Base`` state dict, video-mode entries included
(memory attention/encoder, object pointers: :mod:`.sam2_memory`, graphs in :mod:`.sam2_video`),
so an official checkpoint loads strictly. Image mode uses ``no_mem_embed``,
``image_encoder.{trunk,neck}`` (:mod:`.hiera`), ``sam_prompt_encoder`` (SAM's prompt encoder,
unchanged) and ``sam_mask_decoder``.

The encoder graph returns what ``set_image`` stores: the 64x64 embedding with
``no_mem_embed`` added, and the two high-resolution maps after the decoder's ``conv_s0`` /
``conv_s1``. The decoder graph returns every mask token with its IoU (through a sigmoid)
and the object-score logit; token selection, including the dynamic multimask fallback,
happens host-side (:func:`edge_sam_sdk.processing.select_masks`).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import MLP
from .sam2_memory import MemoryAttention, MemoryEncoder
from .sam_decoder import PromptEncoder, TwoWayTransformer, output_upscaling


class Sam2MaskDecoder(nn.Module):
    """SAM 2's mask decoder: SAM's, plus an object-score token and high-res skip features.

    Tokens are ``[obj_score, iou, mask x4]`` followed by the sparse prompts. The upscaling
    adds ``feat_s1`` (``1x64x128x128``) after the first transposed conv and ``feat_s0``
    (``1x32x256x256``) after the second.
    """

    def __init__(self, dim: int = 256, num_multimask_outputs: int = 3):
        super().__init__()
        self.transformer = TwoWayTransformer(embedding_dim=dim, mlp_keys="layers")
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.obj_score_token = nn.Embedding(1, dim)
        self.output_upscaling = output_upscaling(dim)
        self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(dim, 256, self.num_mask_tokens, 3, sigmoid_output=True)
        self.pred_obj_score_head = MLP(dim, dim, 1, 3)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor, feat_s0: torch.Tensor,
                feat_s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``1xCx64x64`` embeddings and PE, ``BxNxC`` sparse, ``BxCx64x64`` dense, high-res
        maps -> (masks ``Bx4x256x256`` logits, IoU ``Bx4`` in [0, 1], object score ``Bx1``)."""
        masks, iou, score, _ = self.decode(image_embeddings, image_pe, sparse, dense, feat_s0, feat_s1)
        return masks, iou, score

    def decode(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
               dense: torch.Tensor, feat_s0: torch.Tensor,
               feat_s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` plus the mask tokens ``Bx4xC`` after the transformer (video mode
        turns them into object pointers)."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight,
                                self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = image_embeddings + dense  # broadcasts the one image over the prompt batch
        hs, src_out = self.transformer(src, image_pe.expand(b, -1, -1, -1), tokens)
        _, c, h, w = src.shape
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        x = src_out.transpose(1, 2).reshape(b, c, h, w)
        x = act1(ln1(dc1(x) + feat_s1))
        x = act2(dc2(x) + feat_s0)
        mask_out = hs[:, 2:2 + self.num_mask_tokens, :]
        hyper = torch.stack([mlp(mask_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
                            dim=1)
        _, c2, h2, w2 = x.shape
        masks = (hyper @ x.reshape(b, c2, h2 * w2)).reshape(b, -1, h2, w2)
        return (masks, self.iou_prediction_head(hs[:, 1, :]), self.pred_obj_score_head(hs[:, 0, :]),
                mask_out)


class Sam2Model(nn.Module):
    """``SAM2Base`` with the official key names, in the official state-dict order.

    Image mode uses ``no_mem_embed``, ``image_encoder``, ``sam_prompt_encoder`` and
    ``sam_mask_decoder``; video mode (:mod:`.sam2_video`) adds ``maskmem_tpos_enc``
    (``num_maskmem x 1 x 1 x 64``), ``no_obj_ptr``, ``no_obj_embed_spatial``,
    ``memory_attention``, ``memory_encoder``, ``obj_ptr_proj`` (MLP 256-256-256-256) and
    ``obj_ptr_tpos_proj`` (256 -> 64). ``no_mem_pos_enc`` and ``mask_downsample`` are loaded
    but unused (the official model uses them only without ``directly_add_no_mem_embed`` and
    for mask prompts in training).
    """

    def __init__(self, image_encoder: nn.Module, num_maskmem: int = 7):
        super().__init__()
        self.num_maskmem = num_maskmem
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(num_maskmem, 1, 1, 64))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, 256))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, 256))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, 256))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, 64))
        self.image_encoder = image_encoder
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.memory_attention = MemoryAttention(256, 64, 4)
        self.memory_encoder = MemoryEncoder(256, 64)
        self.sam_prompt_encoder = PromptEncoder(256, (64, 64), (1024, 1024), 16)
        self.sam_mask_decoder = Sam2MaskDecoder(256)
        self.obj_ptr_proj = MLP(256, 256, 256, 3)
        self.obj_ptr_tpos_proj = nn.Linear(256, 64)

    def export_graphs(self) -> dict[str, nn.Module]:
        return {"encoder": Sam2EncoderGraph(self).eval(), "decoder": Sam2DecoderGraph(self).eval()}


class Sam2EncoderGraph(nn.Module):
    """``image`` ``1x3x1024x1024`` (normalized) -> ``image_embeddings`` ``1x256x64x64``,
    ``high_res_feats_0`` ``1x32x256x256``, ``high_res_feats_1`` ``1x64x128x128``."""

    def __init__(self, model: Sam2Model):
        super().__init__()
        self.image_encoder = model.image_encoder
        self.conv_s0 = model.sam_mask_decoder.conv_s0
        self.conv_s1 = model.sam_mask_decoder.conv_s1
        self.no_mem_embed = model.no_mem_embed

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        level0, level1, level2 = self.image_encoder(image)
        embeddings = level2 + self.no_mem_embed.reshape(1, -1, 1, 1)
        return embeddings, self.conv_s0(level0), self.conv_s1(level1)


class Sam2DecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for ``B`` prompt sets on one image.

    Inputs: ``image_embeddings``, ``high_res_feats_0``, ``high_res_feats_1`` (the encoder
    graph's outputs); ``point_coords`` ``BxNx2`` in the 1024 frame; ``point_labels`` ``BxN``;
    ``mask_input`` ``Bx1x256x256``; ``has_mask_input`` ``B``. Outputs: ``low_res_masks``
    ``Bx4x256x256``, ``iou_predictions`` ``Bx4`` (sigmoid), ``object_score_logits`` ``Bx1``.
    """

    def __init__(self, model: Sam2Model):
        super().__init__()
        self.prompt_encoder = model.sam_prompt_encoder
        self.mask_decoder = model.sam_mask_decoder

    def forward(self, image_embeddings: torch.Tensor, high_res_feats_0: torch.Tensor,
                high_res_feats_1: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,
                mask_input: torch.Tensor,
                has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels)
        dense = self.prompt_encoder.embed_mask(mask_input, has_mask_input)
        return self.mask_decoder(image_embeddings, self.prompt_encoder.dense_pe(), sparse, dense,
                                 high_res_feats_0, high_res_feats_1)


def _sam2(size: str) -> Sam2Model:
    from .hiera import hiera_image_encoder

    return Sam2Model(hiera_image_encoder(size))


def sam2_1_hiera_tiny() -> Sam2Model:
    return _sam2("tiny")


def sam2_1_hiera_small() -> Sam2Model:
    return _sam2("small")


def sam2_1_hiera_base_plus() -> Sam2Model:
    return _sam2("base_plus")


def sam2_1_hiera_large() -> Sam2Model:
    return _sam2("large")
