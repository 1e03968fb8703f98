"""Whole SAM-style models and their two export graphs.

``SamModel`` owns ``image_encoder``, ``prompt_encoder`` and ``mask_decoder`` with the
official key names, so ``model.load_state_dict(official_state_dict)`` works strictly.
``EncoderGraph`` and ``DecoderGraph`` are the once-per-image and per-prompt graphs that
every target is compiled from.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .cross_attention import ImageSide
from .sam_decoder import ImageProjections, MaskDecoder, PromptEncoder, TwoWayAttentionBlock


class SamModel(nn.Module):
    def __init__(self, image_encoder: nn.Module, prompt_encoder: PromptEncoder,
                 mask_decoder: MaskDecoder):
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder

    def export_graphs(self) -> dict[str, nn.Module]:
        """The two graphs every target is compiled from (each model family provides its own)."""
        return {"encoder": EncoderGraph(self).eval(), "decoder": DecoderGraph(self).eval()}


class EncoderGraph(nn.Module):
    """``image`` ``1x3xSxS`` normalized float32 -> ``image_embeddings`` ``1x256x64x64`` and
    the decoder's per-image projections ``layer0_image_keys``, ``layer0_image_values``,
    ``layer0_image_queries`` (each ``1x4096x128``, see :func:`image_projections`)."""

    def __init__(self, model: SamModel):
        super().__init__()
        self.image_encoder = model.image_encoder
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embeddings = self.image_encoder(image)
        return (embeddings, *image_projections(self.prompt_encoder, self.mask_decoder, embeddings))


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def image_projections(prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder,
                      embeddings: torch.Tensor) -> ImageProjections:
    """Layer 0's image-side projections without a mask prompt, once per image.

    Without a mask input the decoder's image side is ``embeddings + no_mask_embed`` for every
    prompt, so the first block's token->image keys and values and image->token queries
    (3 of the decoder's ~12 ``4096x256x128`` products) are per-image constants.
    """
    no_mask = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
    block = cast(TwoWayAttentionBlock, mask_decoder.transformer.layers[0])
    return block.image_projections(_tokens(embeddings + no_mask), _tokens(prompt_encoder.dense_pe()))


def image_side(prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder, embeddings: torch.Tensor,
               projections: ImageProjections, hidden: torch.Tensor, flag: torch.Tensor) -> ImageSide:
    """Layer 0's image side from the per-image projections, with a mask prompt's exact update.

    The dense embedding of a mask is ``conv1x1(hidden)`` (``W3 h + b3``, ``hidden`` the
    ``Bx16x64x64`` mask features before the last layer) and replaces ``no_mask_embed``, so
    it adds ``flag * (W3 h + b3 - no_mask)`` to the keys; every projection ``P`` is linear,
    so it adds that times ``P`` to the projections: a rank-17 update
    (``update = flag * [h, 1]``, ``BxNx17``) instead of ``256``-channel products. ``flag`` is
    ``Bx1x1``.
    """
    conv = cast(nn.Conv2d, prompt_encoder.mask_downscaling[-1])
    assert conv.bias is not None
    no_mask = prompt_encoder.no_mask_embed.weight  # 1 x C
    d_keys = torch.cat([conv.weight.flatten(1).T, conv.bias[None] - no_mask], dim=0)  # 17 x C
    block = cast(TwoWayAttentionBlock, mask_decoder.transformer.layers[0])
    t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
    h = _tokens(hidden)
    update = flag * torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
    k, v, q = projections
    return ImageSide(_tokens(embeddings), no_mask, k, v, q, update, d_keys,
                     d_keys @ t2i.k_proj.weight.T, d_keys @ t2i.v_proj.weight.T,
                     d_keys @ i2t.q_proj.weight.T)


class DecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for a batch of ``B`` prompts on one image.

    Inputs: ``image_embeddings`` ``1x256x64x64``; the encoder's per-image projections
    ``layer0_image_keys``, ``layer0_image_values``, ``layer0_image_queries`` ``1x4096x128``;
    ``point_coords`` ``BxNx2`` float32 in the prompt frame; ``point_labels`` ``BxN`` float32
    (-1 pad, 0 negative, 1 positive, 2/3 box corners); ``mask_input`` ``Bx1x256x256``
    logits; ``has_mask_input`` ``B`` (1 or 0).
    Outputs: ``low_res_masks`` ``Bx4x256x256`` logits of every mask token, ``iou_predictions``
    ``Bx4``. Token selection (multimask or not) happens host-side.
    """

    def __init__(self, model: SamModel):
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder

    def forward(self, image_embeddings: torch.Tensor, layer0_image_keys: torch.Tensor,
                layer0_image_values: torch.Tensor, layer0_image_queries: torch.Tensor,
                point_coords: torch.Tensor, point_labels: torch.Tensor, mask_input: torch.Tensor,
                has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Argument names are the graph's input names (``torch.export`` keys shapes by them)."""
        pe = self.prompt_encoder
        sparse = pe.embed_points(point_coords, point_labels)
        hidden = pe.mask_features(mask_input)
        flag = has_mask_input.to(hidden.dtype).reshape(-1, 1, 1)
        projections = (layer0_image_keys, layer0_image_values, layer0_image_queries)
        side = image_side(pe, self.mask_decoder, image_embeddings, projections, hidden, flag)
        return self.mask_decoder(image_embeddings, pe.dense_pe(), sparse, None, side)


def sam_model(image_encoder: nn.Module, embedding_size: int = 64,
              prompt_frame: int = 1024, decoder_norm_eps: float = 1e-5,
              decoder_proj_order: str = "qkv") -> SamModel:
    """A model with SAM's standard prompt encoder and mask decoder around ``image_encoder``.

    ``decoder_norm_eps`` and ``decoder_proj_order`` follow :class:`TwoWayTransformer`.
    """
    return SamModel(
        image_encoder,
        PromptEncoder(256, (embedding_size, embedding_size), (prompt_frame, prompt_frame), 16),
        MaskDecoder(256, num_multimask_outputs=3, norm_eps=decoder_norm_eps, proj_order=decoder_proj_order),
    )
