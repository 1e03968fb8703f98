"""Whole SAM-style models and their two export graphs.

``SamModel`` owns ``image_encoder``, ``prompt_encoder`` and ``mask_decoder`` with the
official key names, so ``model.load_state_dict(official_state_dict)`` works strictly.
``EncoderGraph`` and ``DecoderGraph`` are the once-per-image and per-prompt graphs that
every target is compiled from.
"""

from __future__ import annotations

import torch
from torch import nn

from .sam_decoder import MaskDecoder, PromptEncoder


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
    """``image`` ``1x3xSxS`` normalized float32 -> ``image_embeddings`` ``1x256x64x64``."""

    def __init__(self, model: SamModel):
        super().__init__()
        self.image_encoder = model.image_encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(image)


class DecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for a batch of ``B`` prompts on one image.

    Inputs: ``image_embeddings`` ``1x256x64x64``; ``point_coords`` ``BxNx2`` float32 in the
    prompt frame; ``point_labels`` ``BxN`` float32 (-1 pad, 0 negative, 1 positive, 2/3 box
    corners); ``mask_input`` ``Bx1x256x256`` logits; ``has_mask_input`` ``B`` (1 or 0).
    Outputs: ``low_res_masks`` ``Bx4x256x256`` logits of every mask token, ``iou_predictions``
    ``Bx4``. Token selection (multimask or not) happens host-side.
    """

    def __init__(self, model: SamModel):
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor,
                point_labels: torch.Tensor, mask_input: torch.Tensor,
                has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels)
        dense = self.prompt_encoder.embed_mask(mask_input, has_mask_input)
        return self.mask_decoder(image_embeddings, self.prompt_encoder.dense_pe(), sparse, dense)


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
