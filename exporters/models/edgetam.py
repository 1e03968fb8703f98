"""EdgeTAM (facebookresearch/EdgeTAM): SAM 2 with a timm RepViT-M1 trunk and a perceiver memory.

Image mode equals SAM 2.1's (:mod:`.sam2`: same prompt encoder, mask decoder, high-res
features, ``no_mem_embed``) with the trunk replaced by timm's ``repvit_m1`` built
``features_only`` (4 levels, 48/96/192/384 channels, strides 4-32), wrapped as
``image_encoder.trunk.body`` and followed by SAM 2's FPN neck (``scalp`` 1).

Key names and order equal the official state dict (982 entries), video-mode modules included:
memory attention with 2 layers, the memory encoder, ``obj_ptr_proj`` and ``spatial_perceiver``
(:mod:`.perceiver`); EdgeTAM has no ``no_obj_embed_spatial`` and no ``obj_ptr_tpos_proj``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .hiera import FpnNeck, Sam2ImageEncoder
from .layers import interpolate, spatial_mean
from .perceiver import PerceiverResampler
from .sam2 import Sam2Model
from .sam2_memory import (
    MemoryAttention,
    RoPEAttention,
    axial_rope_tables,
    rotate,
    sine_position_encoding,
    slot_key_mask,
)
from .sam2_video import Sam2VideoDecoderGraph, Sam2VideoEncoderGraph


class ConvNorm(nn.Sequential):
    """timm ``ConvNorm``: conv ``c`` (no bias) then BatchNorm ``bn``."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1):
        super().__init__(OrderedDict(
            c=nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            bn=nn.BatchNorm2d(cout)))


class RepVggDw(nn.Module):
    """Legacy timm ``RepVggDw``: depthwise 3x3 + depthwise 1x1 (both conv-BN) + identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = ConvNorm(dim, dim, 3, groups=dim)
        self.conv1 = ConvNorm(dim, dim, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv1(x) + x


class Mlp(nn.Module):
    """1x1 conv-BN, GELU, 1x1 conv-BN."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.conv1 = ConvNorm(dim, hidden)
        self.act = nn.GELU()
        self.conv2 = ConvNorm(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class SqueezeExcite(nn.Module):
    """timm ``SEModule`` (ratio 0.25, divisor 8): mean, 1x1 fc1, ReLU, 1x1 fc2, sigmoid gate."""

    def __init__(self, dim: int):
        super().__init__()
        rd = max(8, int(dim * 0.25 + 4) // 8 * 8)
        rd = rd + 8 if rd < 0.9 * dim * 0.25 else rd
        self.fc1 = nn.Conv2d(dim, rd, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(rd, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = spatial_mean(x)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))


class Block(nn.Module):
    """timm ``RepViTBlock``: token mixer, optional SE, residual channel mixer."""

    def __init__(self, dim: int, use_se: bool):
        super().__init__()
        self.token_mixer = RepVggDw(dim)
        self.se = SqueezeExcite(dim) if use_se else nn.Identity()
        self.channel_mixer = Mlp(dim, dim * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.token_mixer(x))
        return x + self.channel_mixer(x)


class Downsample(nn.Module):
    """timm ``RepViTDownsample``: block, depthwise stride-2 3x3, 1x1 to ``cout``, residual FFN."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pre_block = Block(cin, use_se=False)
        self.spatial_downsample = ConvNorm(cin, cin, 3, 2, groups=cin)
        self.channel_downsample = ConvNorm(cin, cout)
        self.ffn = Mlp(cout, cout * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return x + self.ffn(x)


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int):
        super().__init__()
        self.downsample = Downsample(cin, cout) if cin != cout else nn.Identity()
        self.blocks = nn.Sequential(*(Block(cout, use_se=i % 2 == 0) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Stem(nn.Module):
    def __init__(self, cout: int):
        super().__init__()
        self.conv1 = ConvNorm(3, cout // 2, 3, 2)
        self.act1 = nn.GELU()
        self.conv2 = ConvNorm(cout // 2, cout, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act1(self.conv1(x)))


class RepViTFeatures(nn.Module):
    """timm ``repvit_m1`` ``features_only``: the stage outputs at strides 4, 8, 16, 32."""

    def __init__(self, dims: tuple[int, ...] = (48, 96, 192, 384), depths: tuple[int, ...] = (2, 2, 14, 2)):
        super().__init__()
        self.stem = Stem(dims[0])
        for i, (d, n) in enumerate(zip(dims, depths, strict=True)):
            self.add_module(f"stages_{i}", Stage(dims[max(i - 1, 0)], d, n))
        self.num_stages = len(dims)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"stages_{i}")(x)
            outs.append(x)
        return outs


class TimmTrunk(nn.Module):
    """EdgeTAM's ``TimmBackbone``: the timm model as ``body``; channels finest first."""

    def __init__(self) -> None:
        super().__init__()
        self.body = RepViTFeatures()
        self.channel_list = [384, 192, 96, 48]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


class RoPEAttentionV2(RoPEAttention):
    """EdgeTAM's cross-attention (``RoPEAttentionv2``): queries turn on the 64x64 grid; the
    spatial keys are 512 per memory frame, of which the first 256 (1-D latents) do not turn and
    the last 256 (2-D latents) turn on the 16x16 grid; the last ``exclude`` keys (object
    pointers) do not turn. Same keys as :class:`RoPEAttention`."""

    cos_k: torch.Tensor
    sin_k: torch.Tensor

    def __init__(self, dim: int = 256, kv_in_dim: int = 64, grid: int = 64, k_grid: int = 16):
        super().__init__(dim, kv_in_dim, grid)
        cos, sin = axial_rope_tables(dim, k_grid, k_grid)
        self.register_buffer("cos_k", cos, persistent=False)
        self.register_buffer("sin_k", sin, persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, exclude: int = 0,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = rotate(self.q_proj(q), self.cos, self.sin)
        k, v = self.k_proj(k), self.v_proj(v)
        b, m, c = k.shape
        n2, n_sp = self.cos_k.shape[0], m - exclude
        frames = k[:, :n_sp].reshape(b, -1, 2 * n2, c)
        turned = rotate(frames[:, :, n2:], self.cos_k, self.sin_k)
        spatial = torch.cat([frames[:, :, :n2], turned], dim=2).reshape(b, n_sp, c)
        k = torch.cat([spatial, k[:, n_sp:]], dim=1)
        mask = None if key_mask is None else key_mask.unsqueeze(1)
        return self.out_proj(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


class EdgeTamModel(Sam2Model):
    """``SAM2Base`` as EdgeTAM configures it (official key names and order)."""

    def __init__(self) -> None:
        trunk = TimmTrunk()
        super().__init__(Sam2ImageEncoder(trunk, FpnNeck(trunk.channel_list), scalp=1))  # type: ignore[arg-type]
        del self.no_obj_embed_spatial
        del self.obj_ptr_tpos_proj
        self.memory_attention = MemoryAttention(256, 64, 2)
        for layer in self.memory_attention.layers:
            layer.cross_attn_image = RoPEAttentionV2()
        self.spatial_perceiver = PerceiverResampler()


class EdgeTamMemoryEncoderGraph(nn.Module):
    """SAM 2.1's memory encoding (:class:`.sam2_video.MemoryEncoderGraph`'s inputs) followed by
    the spatial perceiver: ``maskmem_features`` ``1x512x64`` and ``maskmem_pos_enc`` ``1x512x64``.
    EdgeTAM adds no ``no_obj_embed_spatial``."""

    def __init__(self, model: EdgeTamModel, image_size: int = 1024):
        super().__init__()
        self.memory_encoder = model.memory_encoder
        self.spatial_perceiver = model.spatial_perceiver
        self.image_size = image_size

    def forward(self, vision_features: torch.Tensor, mask_logits: torch.Tensor,
                binarize: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        high = interpolate(mask_logits, (self.image_size, self.image_size), "bilinear")
        b = binarize.reshape(1, 1, 1, 1)
        mask = b * (high > 0).to(high.dtype) + (1 - b) * torch.sigmoid(high)
        feats = self.memory_encoder(vision_features, mask * 20.0 - 10.0)
        _, c, h, w = feats.shape
        return self.spatial_perceiver(feats, sine_position_encoding(c, h, w).to(feats.dtype))


def edgetam() -> EdgeTamModel:
    return EdgeTamModel()


class EdgeTamMemoryAttentionGraph(nn.Module):
    """:class:`.sam2_video.MemoryAttentionGraph`'s inputs with ``memory_features`` ``Sx512x64``
    (perceiver tokens) and without ``obj_ptr_pos`` (pointers carry no temporal position)."""

    curr_pos: torch.Tensor
    memory_pos: torch.Tensor

    def __init__(self, model: EdgeTamModel):
        super().__init__()
        self.memory_attention = model.memory_attention
        self.maskmem_tpos_enc = model.maskmem_tpos_enc
        _, pos = model.spatial_perceiver(torch.zeros(1, 64, 64, 64), sine_position_encoding(64, 64, 64))
        self.register_buffer("curr_pos", sine_position_encoding(256, 64, 64).flatten(2).transpose(1, 2),
                             persistent=False)
        self.register_buffer("memory_pos", pos.detach(), persistent=False)

    def forward(self, vision_features: torch.Tensor, memory_features: torch.Tensor,
                memory_tpos: torch.Tensor, memory_valid: torch.Tensor, obj_ptrs: torch.Tensor,
                obj_ptr_valid: torch.Tensor) -> torch.Tensor:
        s, n, mem_dim = memory_features.shape
        p = obj_ptrs.shape[0]
        split = obj_ptrs.shape[1] // mem_dim
        tpos = self.maskmem_tpos_enc.reshape(-1, mem_dim)[memory_tpos]  # S x 64
        spatial_pos = self.memory_pos + tpos.unsqueeze(1)  # S x 512 x 64
        memory = torch.cat([memory_features.reshape(1, s * n, mem_dim),
                            obj_ptrs.reshape(1, p * split, mem_dim)], dim=1)
        memory_pos = torch.cat([spatial_pos.reshape(1, s * n, mem_dim),
                                torch.zeros(1, p * split, mem_dim, dtype=memory.dtype)], dim=1)
        key_mask = slot_key_mask(memory_valid, n, obj_ptr_valid, split)
        curr = vision_features.flatten(2).transpose(1, 2)
        out = self.memory_attention(curr, self.curr_pos, memory, memory_pos, p * split, key_mask)
        return out.transpose(1, 2).reshape(vision_features.shape)


class EdgeTamMemoryEncoderStep(nn.Module):
    """The engine's memory-encoder graph: :class:`EdgeTamMemoryEncoderGraph`'s tokens only
    (no ``object_score_logits`` input: EdgeTAM has no spatial no-object embedding)."""

    def __init__(self, model: EdgeTamModel):
        super().__init__()
        self.inner = EdgeTamMemoryEncoderGraph(model)

    def forward(self, vision_features: torch.Tensor, mask_logits: torch.Tensor,
                binarize: torch.Tensor) -> torch.Tensor:
        return self.inner(vision_features, mask_logits, binarize)[0]


def video_graphs(model: EdgeTamModel) -> dict[str, nn.Module]:
    """EdgeTAM's four video graphs, in eval mode, by bundle name: SAM 2.1's encoder and decoder
    graphs with the 512-token memory attention and memory encoder."""
    return {"video_encoder": Sam2VideoEncoderGraph(model).eval(),
            "memory_attention": EdgeTamMemoryAttentionGraph(model).eval(),
            "video_decoder": Sam2VideoDecoderGraph(model).eval(),
            "memory_encoder": EdgeTamMemoryEncoderStep(model).eval()}
