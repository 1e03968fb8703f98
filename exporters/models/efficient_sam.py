"""EfficientSAM (ViT-Ti / ViT-S) re-implemented for export (torch).

State-dict keys, their order and shapes equal the official ``yformer/EfficientSAM``
model's (278 entries), so an official checkpoint's ``["model"]`` dict loads with
``strict=True``. The arithmetic follows the official code:

- image encoder: plain ViT (patch 16, 12 global-attention blocks, LayerNorm eps 1e-6,
  exact GELU) whose ``1x197xC`` position embedding drops its cls slot and is resized
  bicubically from 14x14 to 64x64; SAM's conv/LayerNorm2d neck -> ``1x256x64x64``.
  The bicubic resize is a fixed linear map, so it is applied as two matrix products
  with torch's own bicubic weights (no ``Resize`` node in exported graphs).
- prompt encoder: random Fourier PE of ``(xy + 0.5) / 1024`` plus a learned embedding
  per label (-1 padding, 1 positive, 2/3 box corners, 0 nothing); always 6 tokens.
- mask decoder: SAM-like two-way transformer (but the self-attention adds the token PE
  to q, k, v *and* the residual, and keeps the residual in the first layer too), GELU
  MLPs, upscaling ConvT-GroupNorm(1)-GELU-ConvT-GELU, IoU head without sigmoid.

The decoder graph returns all 4 mask tokens; the host picks 1..3 (multimask) or 0.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention
from .layers import sam_neck
from .sam_decoder import PositionEmbeddingRandom, TwoWayTransformer

MAX_POINTS = 6  # the official decoder always sees exactly this many prompt tokens


def bicubic_matrix(src: int, dst: int) -> torch.Tensor:
    """``dst x src`` weights of torch's 1-D bicubic resize (``align_corners=False``).

    ``F.interpolate(g, (dst, dst), mode="bicubic")`` of a ``src x src`` grid ``g`` equals
    ``R @ g @ R.T`` with ``R = bicubic_matrix(src, dst)`` (the kernel is separable).
    """
    eye = torch.eye(src, dtype=torch.float64)[:, None, :, None]  # src x 1 x src x 1
    out = F.interpolate(eye, size=(dst, 1), mode="bicubic", align_corners=False)
    return out[:, 0, :, 0].t().to(torch.float32)


class ViTAttention(nn.Module):
    """Global multi-head self-attention (keys ``qkv``, ``proj``): ``BxNxC -> BxNxC``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each B x heads x N x head_dim
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class ViTBlock(nn.Module):
    """Pre-norm ViT block: ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``; ``BxNxC -> BxNxC``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ViTAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict(
            [("fc1", nn.Linear(dim, hidden)), ("act", nn.GELU()), ("fc2", nn.Linear(hidden, dim))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EfficientSamImageEncoder(nn.Module):
    """``Bx3x1024x1024`` normalized image -> ``Bx256x64x64`` embeddings.

    Keys: ``pos_embed`` (``1 x (14*14+1) x C``), ``patch_embed.proj``, ``blocks.<i>``, ``neck.0..3``.
    """

    pos_resize: torch.Tensor

    def __init__(self, embed_dim: int, num_heads: int, depth: int = 12, img_size: int = 1024,
                 patch_size: int = 16, pretrain_size: int = 224, out_dim: int = 256):
        super().__init__()
        self.img_size = img_size
        self.grid = img_size // patch_size
        self.pretrain_grid = pretrain_size // patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pretrain_grid ** 2 + 1, embed_dim))
        self.patch_embed = nn.Sequential(OrderedDict(proj=nn.Conv2d(3, embed_dim, patch_size, patch_size)))
        self.blocks = nn.ModuleList(ViTBlock(embed_dim, num_heads) for _ in range(depth))
        self.neck = sam_neck(embed_dim, out_dim)
        self.register_buffer("pos_resize", bicubic_matrix(self.pretrain_grid, self.grid), persistent=False)

    def position_embedding(self) -> torch.Tensor:
        """The 14x14 grid (cls slot dropped) resized bicubically: ``1 x (64*64) x C``."""
        g = self.pretrain_grid
        grid = self.pos_embed[0, 1:].reshape(g, g, -1).permute(2, 0, 1)  # C x 14 x 14
        r = self.pos_resize.to(grid.dtype)
        pos = r @ grid @ r.t()  # C x 64 x 64
        return pos.flatten(1).t().unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # B x C x 64 x 64
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2) + self.position_embedding()  # B x HW x C
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.transpose(1, 2).reshape(b, c, h, w))


class EfficientSamPromptEncoder(nn.Module):
    """Point/box-corner prompts -> sparse tokens (no mask or dense prompt).

    Keys: ``pe_layer``, ``invalid_points``, ``point_embeddings``, ``bbox_top_left_embeddings``,
    ``bbox_bottom_right_embeddings`` (each ``nn.Embedding(1, 256)``).
    """

    def __init__(self, embed_dim: int = 256, embedding_size: tuple[int, int] = (64, 64),
                 input_image_size: tuple[int, int] = (1024, 1024)):
        super().__init__()
        self.embedding_size = embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.invalid_points = nn.Embedding(1, embed_dim)
        self.point_embeddings = nn.Embedding(1, embed_dim)
        self.bbox_top_left_embeddings = nn.Embedding(1, embed_dim)
        self.bbox_bottom_right_embeddings = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        """PE of the embedding grid: ``1 x 256 x 64 x 64``."""
        return self.pe_layer.dense(*self.embedding_size)

    def forward(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``BxNx2`` coords (1024 frame), ``BxN`` labels -> ``BxNx256`` sparse embeddings."""
        out = self.pe_layer.points(coords, self.input_image_size)
        labels = labels.unsqueeze(-1)
        for label, emb in ((-1, self.invalid_points), (1, self.point_embeddings),
                           (2, self.bbox_top_left_embeddings), (3, self.bbox_bottom_right_embeddings)):
            out = out + emb.weight * (labels == label).to(out.dtype)
        return out


class GeluMLP(nn.Module):
    """``num_layers`` x (Linear-GELU) then ``fc`` Linear: ``...xD -> ...xO``.

    Keys ``layers.<i>.0`` and ``fc`` (the official ``MLPBlock``).
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * num_layers
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(dims[i], dims[i + 1]), nn.GELU())
                                    for i in range(num_layers))
        self.fc = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.fc(x)


class GroupNorm1(nn.GroupNorm):
    """``nn.GroupNorm(1, C)`` (same keys, eps 1e-5): normalizes ``BxCxHxW`` over C, H, W jointly.

    The statistics are taken in two stages, a mean over H, W then a sum over C divided by C
    (exact maths): a single float32 reduction over 64x128x128 values costs ONNX Runtime
    ~5e-5, and onnxsim would merge two consecutive means back into one.
    """

    def __init__(self, num_channels: int):
        super().__init__(1, num_channels)

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True).sum(1, keepdim=True) / self.num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - self._mean(x)
        var = self._mean(d.pow(2))
        return d / torch.sqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


class TwoWayBlock(nn.Module):
    """Self-attention, token->image, GELU MLP, image->token (EfficientSAM's ordering)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, downsample_rate: int,
                 skip_first_layer_pe: bool):
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = GeluMLP(dim, mlp_dim, dim, 1)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``BxTxC``, image ``BxHWxC`` and their PEs -> updated (tokens, image)."""
        if not self.skip_first_layer_pe:
            queries = queries + query_pe  # the PE stays in the residual, as officially
        queries = self.norm1(queries + self.self_attn(queries, queries, queries))
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class EfficientSamMaskDecoder(nn.Module):
    """Image embeddings + sparse tokens -> 4 mask logits (256x256) and 4 IoU scores."""

    def __init__(self, dim: int = 256, num_multimask_outputs: int = 3, iou_head_depth: int = 2,
                 iou_head_hidden_dim: int = 256, upscaling_dims: tuple[int, int] = (64, 32)):
        super().__init__()
        self.transformer = TwoWayTransformer(
            embedding_dim=dim, block=lambda i: TwoWayBlock(dim, 8, 2048, 2, skip_first_layer_pe=i == 0))
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        d1, d2 = upscaling_dims
        self.final_output_upscaling_layers = nn.ModuleList([
            nn.Sequential(nn.ConvTranspose2d(dim, d1, 2, 2), GroupNorm1(d1), nn.GELU()),
            nn.Sequential(nn.ConvTranspose2d(d1, d2, 2, 2), nn.Identity(), nn.GELU()),
        ])
        self.output_hypernetworks_mlps = nn.ModuleList(GeluMLP(dim, dim, d2, 2)
                                                       for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = GeluMLP(dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``1xCxHxW`` embeddings and PE (shared by the batch), ``BxTxC`` sparse tokens
        -> (masks ``Bx4x4Hx4W`` logits, IoU ``Bx4``)."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        _, c, h, w = image_embeddings.shape
        src = image_embeddings.expand(b, -1, -1, -1)
        pos = image_pe.expand(b, -1, -1, -1)
        hs, keys = self.transformer(src, pos, tokens)
        up = keys.transpose(1, 2).reshape(b, c, h, w)
        for layer in self.final_output_upscaling_layers:
            up = layer(up)
        hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
                            dim=1)  # B x 4 x 32
        _, c2, h2, w2 = up.shape
        masks = (hyper @ up.reshape(b, c2, h2 * w2)).reshape(b, self.num_mask_tokens, h2, w2)
        return masks, self.iou_prediction_head(hs[:, 0])


def prepare_prompts(point_coords: torch.Tensor,
                    point_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``BxNx2`` points (1024 frame), ``BxN`` labels -> ``Bx6x2``, ``Bx6`` (official rules).

    Coordinates < 0 become -1 (the guard of ``get_rescaled_pts``); then the prompts are padded
    with ``(-1, -1)``/-1 or truncated to exactly 6, as a concat and a static slice so that
    ``N`` may have any size in an exported graph (no data-dependent shapes).
    """
    coords = torch.where(point_coords >= 0, point_coords, torch.full_like(point_coords, -1.0))
    b = coords.shape[0]
    pad_xy = torch.full((1, MAX_POINTS, 2), -1.0, dtype=coords.dtype, device=coords.device)
    pad_lb = torch.full((1, MAX_POINTS), -1.0, dtype=point_labels.dtype, device=point_labels.device)
    coords = torch.cat([coords, pad_xy.expand(b, -1, -1)], dim=1)[:, :MAX_POINTS]
    labels = torch.cat([point_labels, pad_lb.expand(b, -1)], dim=1)[:, :MAX_POINTS]
    return coords, labels


class EfficientSamModel(nn.Module):
    """EfficientSAM: ``image_encoder``, ``prompt_encoder``, ``mask_decoder`` (official key prefixes)."""

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.image_encoder = EfficientSamImageEncoder(embed_dim, num_heads)
        self.prompt_encoder = EfficientSamPromptEncoder()
        self.mask_decoder = EfficientSamMaskDecoder()

    def predict_masks(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor,
                      point_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``1x256x64x64`` embeddings, ``BxNx2`` points (1024 frame), ``BxN`` labels
        -> (all 4 low-res mask logits ``Bx4x256x256``, IoU ``Bx4``); see :func:`prepare_prompts`."""
        sparse = self.prompt_encoder(*prepare_prompts(point_coords, point_labels))
        return self.mask_decoder(image_embeddings, self.prompt_encoder.dense_pe(), sparse)

    def export_graphs(self) -> dict[str, nn.Module]:
        """The encoder and decoder graphs (eval mode) for export."""
        return {"encoder": EfficientSamEncoderGraph(self).eval(),
                "decoder": EfficientSamDecoderGraph(self).eval()}


class EfficientSamEncoderGraph(nn.Module):
    """``1x3x1024x1024`` resized, normalized image -> ``1x256x64x64`` embeddings."""

    def __init__(self, model: EfficientSamModel):
        super().__init__()
        self.image_encoder = model.image_encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(image)


class EfficientSamDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder on one image's embeddings, for ``B`` prompt sets."""

    def __init__(self, model: EfficientSamModel):
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor,
                point_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``1x256x64x64``, ``BxNx2`` (1024 frame), ``BxN`` float labels
        -> (``low_res_masks`` ``Bx4x256x256``, ``iou_predictions`` ``Bx4``), all 4 tokens."""
        sparse = self.prompt_encoder(*prepare_prompts(point_coords, point_labels))
        return self.mask_decoder(image_embeddings, self.prompt_encoder.dense_pe(), sparse)


def efficient_sam_vitt() -> EfficientSamModel:
    """EfficientSAM ViT-Ti (C=192, 3 heads)."""
    return EfficientSamModel(192, 3)


def efficient_sam_vits() -> EfficientSamModel:
    """EfficientSAM ViT-S (C=384, 6 heads)."""
    return EfficientSamModel(384, 6)
