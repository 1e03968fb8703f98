"""MobileSAM's image encoder (TinyViT-5M plus SAM's neck), re-implemented for export (torch).

Same module tree, parameter names and state-dict order as the official ``vit_t`` encoder,
so an official MobileSAM checkpoint (its ``image_encoder.*`` entries, prefix stripped) loads
unchanged, including the unused classification head (``norm_head``, ``head``).

Inference only and export-friendly: static shapes computed in Python at construction, no
tensor-to-Python conversions, no data-dependent branches, no dropout / drop-path, plain
torch ops. Layout: stages exchange ``BxCxHxW`` tensors; transformer blocks work on
channels-last ``BxHxWxC`` (the official token order ``L = H*W`` row-major, so the two agree).

Resolutions for the default 1024x1024 input (``r = img_size // 4 = 256``):

==========  ======  ==========  ===========  ==========================
stage       dim     resolution  window       note
==========  ======  ==========  ===========  ==========================
patch_embed 64      256x256     -            two stride-2 Conv2d_BN
layers.0    64      256x256     -            2 MBConv, merge -> 128x128
layers.1    128     128x128     7 (pad 5)    merge -> 64x64
layers.2    160     64x64       14 (pad 6)   merge to 320, stride 1
layers.3    320     64x64       7 (pad 6)    no merge
neck        256     64x64       -            SAM neck
==========  ======  ==========  ===========  ==========================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Conv2dBN, sam_neck

#: Merging into a stage of one of these widths keeps the resolution (official MobileSAM rule,
#: which makes the last stage run at 1/16 like SAM's ViT).
_STRIDE_ONE_DIMS = (320, 448, 576)


class PatchEmbed(nn.Module):
    """``Bx3xHxW`` -> ``Bx{dim}x(H/4)x(W/4)``: Conv2dBN(s2), GELU, Conv2dBN(s2) (keys ``seq.0/2``)."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(in_chans, dim // 2, 3, 2, 1), nn.GELU(),
                                 Conv2dBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual on ``BxCxHxW``: 1x1 expand, 3x3 depthwise, 1x1 project, each with BN;
    GELU after the first two, and GELU again *after* the residual sum."""

    def __init__(self, dim: int, expand_ratio: float):
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = Conv2dBN(dim, hidden)
        self.conv2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = Conv2dBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """``BxCxHxW`` -> ``Bx{out_dim}xH'xW'``: 1x1 conv, GELU, 3x3 depthwise (stride 2, or 1 when
    ``out_dim`` is 320/448/576), GELU, 1x1 conv; all Conv2dBN."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.stride = 1 if out_dim in _STRIDE_ONE_DIMS else 2
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, self.stride, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        return self.conv3(x)


class Attention(nn.Module):
    """Windowed multi-head self-attention on ``BwxNxC`` (``N = window**2``) with its own
    pre-LayerNorm and LeViT-style learned biases indexed by the ``(|dy|, |dx|)`` offset."""

    attention_bias_idxs: torch.Tensor

    def __init__(self, dim: int, num_heads: int, window: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads  # key_dim == value dim (attn_ratio 1)
        self.scale = self.head_dim ** -0.5
        self.n = window * window
        # Official table: offsets numbered by first appearance over itertools.product pairs;
        # the first query (0, 0) meets every offset in row-major order, so id = |dy|*w + |dx|.
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, self.n))
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        ys = torch.arange(window).repeat_interleave(window)
        xs = torch.arange(window).repeat(window)
        idx = (ys[:, None] - ys[None, :]).abs() * window + (xs[:, None] - xs[None, :]).abs()
        self.register_buffer("attention_bias_idxs", idx, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``BwxNxC`` -> ``BwxNxC``."""
        x = self.norm(x)
        # qkv is laid out per head: [q (hd) | k (hd) | v (hd)] for head 0, then head 1, ...
        qkv = self.qkv(x).view(-1, self.n, self.num_heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=3)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn + self.attention_biases[:, self.attention_bias_idxs]
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, self.n, self.num_heads * self.head_dim)
        return self.proj(x)


class Mlp(nn.Module):
    """Pre-LayerNorm MLP on the last axis: norm, fc1, exact (erf) GELU, fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """``BxHxWxC`` -> same: window attention (+res), 3x3 depthwise ``local_conv``, MLP (+res).

    The map is zero-padded at the bottom/right to a multiple of the window *before* the
    attention's LayerNorm, and the padded tokens take part in attention unmasked (as in the
    official code); they are cropped off afterwards.
    """

    def __init__(self, dim: int, resolution: int, num_heads: int, window: int, mlp_ratio: float,
                 local_conv_size: int):
        super().__init__()
        self.res, self.window, self.dim = resolution, window, dim
        self.pad = (window - resolution % window) % window
        self.nw = (resolution + self.pad) // window
        self.attn = Attention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:
        w, nw, c = self.window, self.nw, self.dim
        if self.pad:
            x = F.pad(x, (0, 0, 0, self.pad, 0, self.pad))
        x = x.view(-1, nw, w, nw, w, c).transpose(2, 3).reshape(-1, w * w, c)
        x = self.attn(x)
        x = x.view(-1, nw, nw, w, w, c).transpose(2, 3).reshape(-1, nw * w, nw * w, c)
        if self.pad:
            x = x[:, :self.res, :self.res]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._window_attention(x)
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    """Stage 0 on ``BxCxHxW``: MBConv blocks, then PatchMerging (key ``downsample``)."""

    def __init__(self, dim: int, depth: int, out_dim: int, expand_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x)


class BasicLayer(nn.Module):
    """Transformer stage, ``BxCxHxW`` in and out: TinyViT blocks, then optional PatchMerging."""

    def __init__(self, dim: int, resolution: int, depth: int, num_heads: int, window: int,
                 mlp_ratio: float, local_conv_size: int, out_dim: int | None):
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, resolution, num_heads, window, mlp_ratio, local_conv_size)
            for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            x = blk(x)
        x = x.permute(0, 3, 1, 2)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """MobileSAM image encoder. Defaults are the official ``vit_t`` (TinyViT-5M) config.

    ``forward``: normalized image ``Bx3x1024x1024`` float32 -> ``image_embeddings``
    ``Bx256x64x64``. ``norm_head`` / ``head`` exist only so the checkpoint loads; unused.
    """

    def __init__(self, img_size: int = 1024, in_chans: int = 3, num_classes: int = 1000,
                 embed_dims: tuple[int, ...] = (64, 128, 160, 320),
                 depths: tuple[int, ...] = (2, 2, 6, 2),
                 num_heads: tuple[int, ...] = (2, 4, 5, 10),
                 window_sizes: tuple[int, ...] = (7, 7, 14, 7),
                 mlp_ratio: float = 4.0, mbconv_expand_ratio: float = 4.0,
                 local_conv_size: int = 3, out_chans: int = 256):
        super().__init__()
        n = len(depths)
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        res = img_size // 4
        self.layers = nn.ModuleList()
        for i in range(n):
            out_dim = embed_dims[i + 1] if i < n - 1 else None
            layer: ConvLayer | BasicLayer
            if i == 0:
                assert out_dim is not None, "stage 0 always merges"
                layer = ConvLayer(embed_dims[0], depths[0], out_dim, mbconv_expand_ratio)
            else:
                layer = BasicLayer(embed_dims[i], res, depths[i], num_heads[i], window_sizes[i],
                                   mlp_ratio, local_conv_size, out_dim)
            self.layers.append(layer)
            if layer.downsample is not None:
                res = (res - 1) // layer.downsample.stride + 1  # 3x3 conv, pad 1
        self.out_res = res  # 64 for 1024 input
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.neck = sam_neck(embed_dims[-1], out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Bx3xSxS`` normalized image -> ``Bx{out_chans}x(S/16)x(S/16)`` image embeddings."""
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)


__all__ = ["TinyViT"]
