"""SAM 2.1 image encoder (Hiera trunk + FPN neck), export-friendly.

Key names and order equal the official ``image_encoder.trunk.*`` / ``image_encoder.neck.*``
entries (facebookresearch/sam2, configs ``sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml``), so official
checkpoints load unchanged. Differences from the official code are in form only: every token
grid, window count and padding is a Python int fixed at construction (static reshapes for a
``1 x 3 x S x S`` input, S = 1024 by default), max pooling is a reshape + max, attention is
written out (``softmax(q k^T / sqrt(d)) v``), and the neck's sine position encoding, unused
in image mode and weightless, is left out.

Shapes for S = 1024 and Hiera-T (``C = 96``): patch embedding ``1 x 256 x 256 x C`` (tokens
are ``B x H x W x C`` inside the trunk), stage ends ``C@256, 2C@128, 4C@64, 8C@32``
(``B x C x H x W``), FPN levels ``1 x 256 x {256, 128, 64, 32}^2``; ``scalp = 1`` drops the 32x32 one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class HieraConfig:
    """Hyper-parameters of one Hiera trunk (official ``Hiera`` arguments and defaults)."""

    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_pos_embed_bkg_spatial_size: tuple[int, int]
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    q_pool: int = 3
    q_stride: int = 2
    dim_mul: float = 2.0
    head_mul: float = 2.0


#: Official SAM 2.1 trunks (``configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml``); the FPN neck is
#: the same for all (d_model 256, top-down levels [2, 3], nearest, sum), and ``scalp`` is 1.
CONFIGS: dict[str, HieraConfig] = {
    "tiny": HieraConfig(96, 1, (1, 2, 7, 2), (5, 7, 9), (7, 7)),
    "small": HieraConfig(96, 1, (1, 2, 11, 2), (7, 10, 13), (7, 7)),
    "base_plus": HieraConfig(112, 2, (2, 3, 16, 3), (12, 16, 20), (14, 14)),
    "large": HieraConfig(144, 2, (2, 6, 36, 4), (23, 33, 43), (7, 7), (8, 4, 16, 8)),
}


def _max_pool(x: torch.Tensor, s: int, h: int, w: int, c: int) -> torch.Tensor:
    """``N x h x w x c`` -> ``N x h/s x w/s x c``: max over ``s x s`` cells (= MaxPool2d(s, s)).

    ``N`` and the cell rows share one axis: Core ML takes tensors of rank <= 5 (same maxima).
    """
    return x.reshape(-1, s, w // s, s, c).amax(dim=(1, 3)).reshape(-1, h // s, w // s, c)


class MLP(nn.Module):
    """Linear -> GELU -> Linear on the last dim (keys ``layers.0``, ``layers.1``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.Linear(hidden, dim)])
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](self.act(self.layers[0](x)))


class MultiScaleAttention(nn.Module):
    """Multi-head attention over an ``N x size x size x dim`` grid, optionally q-pooled.

    Output ``N x size/s x size/s x dim_out`` where ``s = q_stride`` (1: no pooling): queries are
    max-pooled ``s x s``, keys and values keep the full grid.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, size: int, q_stride: int = 1):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim_out // num_heads
        self.dim_out, self.size, self.q_stride = dim_out, size, q_stride
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)

    def _heads(self, t: torch.Tensor, length: int) -> torch.Tensor:
        """``N x h x w x dim_out`` -> ``N x heads x (h*w) x head_dim``."""
        return t.reshape(-1, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, s = self.size, self.q_stride
        q, k, v = self.qkv(x).split(self.dim_out, dim=-1)  # each N x n x n x dim_out
        if s > 1:
            q = _max_pool(q, s, n, n, self.dim_out)
        m = n // s
        q, k, v = self._heads(q, m * m), self._heads(k, n * n), self._heads(v, n * n)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # N x heads x m^2 x n^2
        out = (attn @ v).transpose(1, 2).reshape(-1, m, m, self.dim_out)
        return self.proj(out)


class MultiScaleBlock(nn.Module):
    """Hiera block: ``B x grid x grid x dim`` -> ``B x grid/s x grid/s x dim_out``.

    Pre-norm (LayerNorm eps 1e-6) attention, in zero-padded ``window_size`` windows unless
    ``window_size == 0`` (global), then a GELU MLP (ratio 4). At a stage change (``dim != dim_out``)
    the shortcut is ``proj(norm1(x))``, max-pooled ``s x s`` like the queries when ``q_stride = s > 1``.
    """

    proj: nn.Linear | None

    def __init__(self, dim: int, dim_out: int, num_heads: int, window_size: int, grid: int,
                 q_stride: int = 1):
        super().__init__()
        if grid % q_stride or window_size % q_stride:
            raise ValueError(f"grid {grid} and window {window_size} must be multiples of {q_stride}")
        self.window_size, self.grid, self.q_stride = window_size, grid, q_stride
        self.dim, self.dim_out = dim, dim_out
        self.pad = (-grid) % window_size if window_size > 0 else 0
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        size = window_size if window_size > 0 else grid
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, size, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, 4 * dim_out)
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def _windowed(self, y: torch.Tensor) -> torch.Tensor:
        """Attention in ``ws x ws`` windows of the padded grid; the padding is cropped after."""
        ws, s, c = self.window_size, self.q_stride, self.dim
        nw = (self.grid + self.pad) // ws
        if self.pad:
            y = F.pad(y, (0, 0, 0, self.pad, 0, self.pad))  # zero tokens join the last windows
        y = y.reshape(-1, nw, ws, nw, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)
        y = self.attn(y)  # (B * nw^2) x ws/s x ws/s x dim_out
        wo, go = ws // s, self.grid // s
        y = y.reshape(-1, nw, nw, wo, wo, self.dim_out).permute(0, 1, 3, 2, 4, 5)
        y = y.reshape(-1, nw * wo, nw * wo, self.dim_out)
        return y[:, :go, :go, :] if nw * wo > go else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.proj is not None:
            x = self.proj(y)
        if self.q_stride > 1:
            x = _max_pool(x, self.q_stride, self.grid, self.grid, self.dim_out)
        y = self._windowed(y) if self.window_size > 0 else self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Conv 7x7 stride 4 pad 3: ``B x 3 x S x S`` -> ``B x S/4 x S/4 x C`` (channels last)."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    """Hiera trunk: ``B x 3 x S x S`` -> the 4 stage ends ``B x C_i x S/4/2^i x S/4/2^i``.

    ``C_i = embed_dim * dim_mul^i``; ``channel_list`` lists them coarsest first, as the neck expects.
    """

    def __init__(self, cfg: HieraConfig, img_size: int = 1024):
        super().__init__()
        dim, heads, grid = cfg.embed_dim, cfg.num_heads, img_size // 4
        w0 = cfg.window_spec[0]
        if grid % w0:
            raise ValueError(f"token grid {grid} is not a multiple of the window {w0}")
        self.grid, self.window0 = grid, w0
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *cfg.window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, dim, w0, w0))
        self.patch_embed = PatchEmbed(dim)
        ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        q_pool_blocks = [e + 1 for e in ends[:-1]][: cfg.q_pool]
        self.stage_ends = ends
        blocks: list[MultiScaleBlock] = []
        stage = 0
        for i in range(sum(cfg.stages)):
            # The first block of a stage still uses the previous stage's window size.
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            dim_out = dim
            if i - 1 in ends:
                dim_out, heads, stage = int(dim * cfg.dim_mul), int(heads * cfg.head_mul), stage + 1
            s = cfg.q_stride if i in q_pool_blocks else 1
            blocks.append(MultiScaleBlock(dim, dim_out, heads, window, grid, s))
            dim, grid = dim_out, grid // s
        self.blocks = nn.ModuleList(blocks)
        self.channel_list = [blocks[e].dim_out for e in ends[::-1]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)  # B x g x g x C
        g, r = self.grid, self.grid // self.window0
        pos = F.interpolate(self.pos_embed, size=(g, g), mode="bicubic", align_corners=False)
        pos = pos + self.pos_embed_window.repeat(1, 1, r, r)  # 1 x C x g x g, windows tiled
        x = x + pos.permute(0, 2, 3, 1)
        outs: list[torch.Tensor] = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.stage_ends:
                outs.append(x.permute(0, 3, 1, 2))
        return outs


class FpnNeck(nn.Module):
    """FPN neck: stage ends (finest first) -> ``d_model`` levels at the same resolutions.

    ``convs[n - i]`` (1x1, bias) is level ``i``'s lateral conv (``n = 3``); levels in
    ``top_down_levels`` add the nearest-2x upsampled level above them (sum fusion).
    """

    def __init__(self, channel_list: Sequence[int], d_model: int = 256,
                 top_down_levels: Sequence[int] = (2, 3)):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(c, d_model, kernel_size=1))) for c in channel_list)
        self.top_down_levels = tuple(top_down_levels)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(self.convs) - 1
        outs: list[torch.Tensor] = []
        prev: torch.Tensor | None = None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in self.top_down_levels and prev is not None:
                lateral = lateral + F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = lateral
            outs.insert(0, lateral)
        return outs


class Sam2ImageEncoder(nn.Module):
    """SAM 2.1 image encoder: ``1 x 3 x S x S`` normalized image -> FPN levels, finest first.

    For S = 1024 and ``scalp = 1``: ``[1x256x256x256, 1x256x128x128, 1x256x64x64]``. The SAM 2
    model adds ``no_mem_embed`` to the last (image embeddings) and ``conv_s0`` / ``conv_s1`` of
    the mask decoder to the first two (high-resolution features); none of that is done here.
    """

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1):
        super().__init__()
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = self.neck(self.trunk(x))
        return levels[: len(levels) - self.scalp]


def hiera_image_encoder(size: str, img_size: int = 1024) -> Sam2ImageEncoder:
    """The SAM 2.1 image encoder of ``size`` (``tiny``, ``small``, ``base_plus``, ``large``)."""
    if size not in CONFIGS:
        raise ValueError(f"unknown SAM 2.1 Hiera size {size!r}; known: {', '.join(CONFIGS)}")
    trunk = Hiera(CONFIGS[size], img_size)
    return Sam2ImageEncoder(trunk, FpnNeck(trunk.channel_list), scalp=1)
