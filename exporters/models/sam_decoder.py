"""SAM's prompt encoder, two-way transformer and mask decoder (torch, export-friendly).

Key names equal segment-anything's ``PromptEncoder`` and ``MaskDecoder``. The prompt
encoder here takes the *graph* form of prompts: points ``BxNx2`` in the prompt frame with
labels ``BxN`` (-1 padding, 0 negative, 1 positive, 2/3 box corners) and a mask input with
a ``has_mask_input`` flag, all as tensors, so one graph serves every prompt kind. Boxes
are two corner points with labels 2 and 3, which embeds them exactly as the official
``_embed_boxes`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from . import cross_attention as xa
from .attention import Attention
from .layers import MLP, LayerNorm2d, MLPBlock

#: Layer 0's image-side projections ``(token->image keys, values, image->token queries)``.
ImageProjections = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalized ``(x, y)`` coordinates (SAM)."""

    positional_encoding_gaussian_matrix: torch.Tensor

    def __init__(self, num_pos_feats: int = 128):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` coordinates in ``[0, 1]`` -> ``(..., 2 * num_pos_feats)``."""
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def points(self, coords: torch.Tensor, frame: tuple[int, int]) -> torch.Tensor:
        """PE of pixel-centre coordinates ``(..., 2)`` in an ``(h, w)`` frame: ``(xy + 0.5) / (w, h)``."""
        h, w = frame
        scale = torch.tensor([1.0 / w, 1.0 / h], dtype=coords.dtype, device=coords.device)
        return self.encode((coords + 0.5) * scale)

    def dense(self, h: int, w: int) -> torch.Tensor:
        """Positional encoding of an ``h x w`` grid: ``1 x C x h x w``."""
        grid = torch.ones(h, w, dtype=self.positional_encoding_gaussian_matrix.dtype,
                          device=self.positional_encoding_gaussian_matrix.device)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1).unsqueeze(0)


class PromptEncoder(nn.Module):
    """Sparse (points) and dense (mask) prompt embeddings.

    Args:
        embed_dim: embedding channels (256).
        embedding_size: ``(h, w)`` of the image embedding (64, 64).
        input_image_size: ``(h, w)`` of the prompt frame (1024, 1024).
        mask_in_chans: hidden channels of the mask downscaler (16).
    """

    def __init__(self, embed_dim: int = 256, embedding_size: tuple[int, int] = (64, 64),
                 input_image_size: tuple[int, int] = (1024, 1024), mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding_size = embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        return self.pe_layer.dense(*self.embedding_size)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``BxNx2`` prompt-frame coords, ``BxN`` labels -> ``BxNxC`` sparse embeddings."""
        pe = self.pe_layer.points(coords, self.input_image_size)
        labels = labels.unsqueeze(-1).to(pe.dtype)
        out = pe * (labels != -1).to(pe.dtype) + self.not_a_point_embed.weight * (labels == -1).to(pe.dtype)
        for i, emb in enumerate(self.point_embeddings):
            out = out + cast(nn.Embedding, emb).weight * (labels == i).to(pe.dtype)
        return out

    def embed_mask(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """``Bx1x4Hx4W`` logits and ``B`` flags -> ``BxCxHxW`` dense embeddings."""
        return self.embed_mask_features(self.mask_features(mask_input), has_mask_input)

    def mask_features(self, mask_input: torch.Tensor) -> torch.Tensor:
        """``Bx1x4Hx4W`` logits -> the downscaler's ``Bx16xHxW`` features before its last
        (1x1, linear) convolution."""
        return self.mask_downscaling[:-1](mask_input)

    def embed_mask_features(self, features: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """:meth:`mask_features` and ``B`` flags -> ``BxCxHxW`` dense embeddings."""
        flag = has_mask_input.to(features.dtype).reshape(-1, 1, 1, 1)
        no_mask = self.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return flag * self.mask_downscaling[-1](features) + (1 - flag) * no_mask


class TwoWayAttentionBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, downsample_rate: int,
                 skip_first_layer_pe: bool, norm_eps: float = 1e-5, proj_order: str = "qkv",
                 mlp_keys: str = "lin"):
        super().__init__()
        self.self_attn = Attention(dim, num_heads, proj_order=proj_order)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate, proj_order)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        # SAM names the ReLU MLP's layers lin1/lin2, SAM 2 layers.0/layers.1 (same math).
        self.mlp: nn.Module = (MLPBlock(dim, mlp_dim, nn.ReLU) if mlp_keys == "lin"
                               else MLP(dim, mlp_dim, dim, 2))
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps)
        self.norm4 = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate, proj_order)
        self.skip_first_layer_pe = skip_first_layer_pe

    def image_projections(self, keys: torch.Tensor, key_pe: torch.Tensor) -> ImageProjections:
        """The projections of the image side that do not depend on the tokens: token->image
        keys and values and image->token queries, each ``BxHWxD``."""
        k = keys + key_pe
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        return t2i.k_proj(k), t2i.v_proj(keys), i2t.q_proj(k)

    def self_attention(self, queries: torch.Tensor, query_pe: torch.Tensor) -> torch.Tensor:
        """The tokens' self-attention and ``norm1`` (layer 0 leaves the PE out, as officially)."""
        if self.skip_first_layer_pe:
            return self.norm1(self.self_attn(queries, queries, queries))
        q = queries + query_pe
        return self.norm1(queries + self.self_attn(q, q, queries))

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor, side: xa.ImageSide | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``side``: the image side projected beforehand (once per image, layer 0 only); it
        replaces ``keys``."""
        queries = self.self_attention(queries, query_pe)
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        # Reassociated cross-attention (same math, see cross_attention.py).
        if side is None:
            k = keys + key_pe
            queries = self.norm2(queries + xa.token_to_image(t2i, queries + query_pe, k, keys))
        else:
            queries = self.norm2(queries + side.token_to_image(t2i, queries + query_pe))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        if side is None:
            return queries, self.norm4(keys + xa.image_to_token(i2t, k, q, queries))
        return queries, self.norm4(side.image_to_token(i2t, q, queries))


class TwoWayTransformer(nn.Module):
    """Tokens attend to the image and back, ``depth`` times, then a final token->image pass.

    ``norm_eps`` is the LayerNorms' epsilon (SAM: 1e-5; EfficientViT-SAM sets 1e-6);
    ``proj_order`` orders the attention projections' keys (see :class:`Attention`);
    ``mlp_keys`` names the MLP layers (``"lin"``: SAM's ``lin1/lin2``, ``"layers"``: SAM 2's).
    ``block`` builds layer ``i`` instead of :class:`TwoWayAttentionBlock` (EfficientSAM's
    blocks treat the token PE differently); it takes and returns ``(queries, keys)`` alike.
    """

    def __init__(self, depth: int = 2, embedding_dim: int = 256, num_heads: int = 8,
                 mlp_dim: int = 2048, attention_downsample_rate: int = 2, norm_eps: float = 1e-5,
                 proj_order: str = "qkv", mlp_keys: str = "lin",
                 block: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.layers = nn.ModuleList(
            block(i) if block is not None else
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, attention_downsample_rate,
                                 skip_first_layer_pe=(i == 0), norm_eps=norm_eps, proj_order=proj_order,
                                 mlp_keys=mlp_keys)
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate,
                                                   proj_order)
        self.norm_final_attn = nn.LayerNorm(embedding_dim, eps=norm_eps)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor,
                side: xa.ImageSide | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``BxCxHxW`` image, its PE (batch 1 or ``B``), ``BxTxC`` tokens -> (tokens ``BxTxC``,
        image ``BxHWxC``).

        ``side``: layer 0's image side projected beforehand; it replaces ``image``.
        """
        key_pe = image_pe.flatten(2).transpose(1, 2)
        keys = side.keys if side is not None else image.flatten(2).transpose(1, 2)
        queries = tokens
        for i, layer in enumerate(self.layers):
            extra = [side] if i == 0 and side is not None else []
            queries, keys = layer(queries, keys, tokens, key_pe, *extra)
        q, k = queries + tokens, keys + key_pe
        queries = self.norm_final_attn(queries + xa.token_to_image(self.final_attn_token_to_image, q, k,
                                                                   keys))
        return queries, keys


def output_upscaling(dim: int) -> nn.Sequential:
    """SAM's (and SAM 2's) 4x upscaling of ``dim`` channels to ``dim / 8`` (keys ``0, 1, 3``)."""
    return nn.Sequential(
        nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
        LayerNorm2d(dim // 4),
        nn.GELU(),
        nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
        nn.GELU(),
    )


class MaskDecoder(nn.Module):
    """Predicts ``num_multimask_outputs + 1`` masks and their IoU scores from embeddings."""

    def __init__(self, transformer_dim: int = 256, num_multimask_outputs: int = 3,
                 iou_head_depth: int = 3, iou_head_hidden_dim: int = 256, norm_eps: float = 1e-5,
                 proj_order: str = "qkv"):
        super().__init__()
        self.transformer = TwoWayTransformer(embedding_dim=transformer_dim, norm_eps=norm_eps,
                                             proj_order=proj_order)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = output_upscaling(transformer_dim)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens,
                                       iou_head_depth)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse: torch.Tensor, dense: torch.Tensor | None, side: xa.ImageSide | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``1xCxHxW`` embeddings, ``1xCxHxW`` PE, ``BxNxC`` sparse, ``BxCxHxW`` dense
        -> (all masks ``BxMx4Hx4W`` logits, IoU ``BxM``).

        ``side``: layer 0's image side of ``image_embeddings + dense``, projected beforehand
        (:class:`cross_attention.ImageSide`); ``dense`` is then ``None``."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = image_embeddings if dense is None else image_embeddings + dense  # broadcasts over B
        hs, src_out = self.transformer(src, image_pe, tokens, side)
        iou_out = hs[:, 0, :]
        mask_out = hs[:, 1:1 + self.num_mask_tokens, :]
        hyper = torch.stack([mlp(mask_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
                            dim=1)
        masks = upscaled_masks(self.output_upscaling, src_out, hyper, *src.shape[-2:])
        return masks, self.iou_prediction_head(iou_out)


def upscaled_masks(upscaling: nn.Sequential, tokens: torch.Tensor, hyper: torch.Tensor, h: int,
                   w: int) -> torch.Tensor:
    """SAM's ``hyper @ output_upscaling(image)``, computed in token layout.

    ``tokens`` ``BxHWxC`` (the transformer's image side), ``hyper`` ``BxMxC/8`` -> masks
    ``BxMx4Hx4W``. A 2x2 stride-2 ConvTranspose has no overlapping taps, so each one is a
    MatMul ``C -> (2, 2, C')`` per pixel, LayerNorm2d is a last-axis LayerNorm, and the
    pixel shuffle back to ``4H x 4W`` happens once, on the ``M``-channel masks. Same math as
    the NCHW modules (keys unchanged); graph runtimes fuse the MatMul/LayerNorm/GELU forms.
    """
    dc1, ln, act1, dc2, act2 = upscaling
    b, n = tokens.shape[0], h * w

    def taps(dc: nn.Module, x: torch.Tensor) -> torch.Tensor:  # (..., Cin) -> (..., 4, Cout)
        conv = cast(nn.ConvTranspose2d, dc)
        cin, cout = conv.weight.shape[:2]
        assert conv.bias is not None
        # One 2-D product with its bias (a Gemm), so the bias does not fuse into the GELU.
        y = nn.functional.linear(x.reshape(-1, cin), conv.weight.permute(2, 3, 1, 0).reshape(4 * cout, cin),
                                 conv.bias.repeat(4))
        return y.reshape(*x.shape[:-1], 4, cout)

    norm = cast(LayerNorm2d, ln)
    y = act1(nn.functional.layer_norm(taps(dc1, tokens), norm.weight.shape, norm.weight, norm.bias,
                                      norm.eps))  # B x HW x (di, dj) x C/4
    y = act2(taps(dc2, y)).reshape(b, n * 16, -1)  # rows (i, j, di, dj, ei, ej)
    m = hyper.shape[1]
    masks = (hyper @ y.transpose(1, 2)).reshape(b * m * n * 2, 2, 2, 2)  # (.., dj, ei, ej)
    masks = masks.transpose(1, 2).reshape(b * m * h, w, 4, 4).transpose(1, 2)  # (di, ei), w, (dj, ej)
    return masks.reshape(b, m, 4 * h, 4 * w)
