"""SAM 2.1 video-mode modules: memory attention and memory encoder (torch, export-friendly).

Key names equal the official ``SAM2Base.memory_attention.*`` and ``memory_encoder.*`` entries
(facebookresearch/sam2, ``configs/sam2.1/sam2.1_hiera_*.yaml``). Differences from the official
code are in form only: rotary encodings are real-valued ``cos``/``sin`` tables (the same
rotation of channel pairs ``(2j, 2j+1)`` as the complex form), sine position encodings are
buffers computed once at construction, and attention takes an additive key mask so that unused
memory slots of a static-shape graph drop out exactly (``exp(-inf) = 0``).

Shapes (Tiny..Large alike, 1024 input): the current frame is ``1 x 4096 x 256`` tokens (64x64
grid, row-major), each spatial memory ``4096 x 64`` tokens, each object pointer 4 tokens of 64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LayerNorm2d


def sine_position_encoding(channels: int, h: int, w: int) -> torch.Tensor:
    """``PositionEmbeddingSine(channels, normalize=True)`` of an ``h x w`` grid: ``1 x C x h x w``.

    Channels ``[0, C/2)`` encode y, ``[C/2, C)`` x; within each half even channels are sines and
    odd ones cosines of ``pos * 2pi / (n + 1e-6) / 10000 ** (2 * (i // 2) / (C/2))``.
    """
    half = channels // 2
    y = torch.arange(1, h + 1, dtype=torch.float32).view(-1, 1).expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float32).view(1, -1).expand(h, w)
    scale = 2 * math.pi
    y = y / (h + 1e-6) * scale
    x = x / (w + 1e-6) * scale
    dim_t = torch.arange(half, dtype=torch.float32)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)

    def enc(v: torch.Tensor) -> torch.Tensor:
        p = v[:, :, None] / dim_t
        return torch.stack((p[:, :, 0::2].sin(), p[:, :, 1::2].cos()), dim=3).flatten(2)

    return torch.cat((enc(y), enc(x)), dim=2).permute(2, 0, 1).unsqueeze(0)


def sine_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """``get_1d_sine_pe``: ``(..., )`` positions -> ``(..., dim)`` = ``cat(sin, cos)`` of
    ``pos / 10000 ** (2 * (i // 2) / (dim / 2))``."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=pos.device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    p = pos.unsqueeze(-1) / dim_t
    return torch.cat([p.sin(), p.cos()], dim=-1)


def axial_rope_tables(dim: int, end_x: int, end_y: int,
                      theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``compute_axial_cis`` as real tables: ``cos``, ``sin`` each ``(end_x * end_y) x dim``.

    Token ``i`` has ``x = i % end_x``, ``y = i // end_x``; pair ``j < dim/4`` turns by
    ``x * f_j``, pair ``dim/4 + j`` by ``y * f_j``, ``f_j = theta ** (-4j / dim)``. Each angle
    is repeated for the two channels of its pair.
    """
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    tx, ty = t % end_x, torch.div(t, end_x, rounding_mode="floor")
    angles = torch.cat([torch.outer(tx, freqs), torch.outer(ty, freqs)], dim=-1)  # N x dim/2
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(2j, 2j+1)`` of ``x`` ``(..., N, D)`` by the tables ``N x D``."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).reshape(x.shape)
    return x * cos + turned * sin


class RoPEAttention(nn.Module):
    """One-head attention with axial RoPE on the queries and the first keys.

    ``q`` ``BxNxC`` (N = grid tokens), ``k``/``v`` ``BxMxKV``; the first ``M - exclude`` keys
    are whole grids (``rope_k_repeat``: the tables repeat per grid). ``key_mask`` ``1xM``
    (0 or -inf) is added to the logits. Keys ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``.
    """

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, dim: int = 256, kv_in_dim: int = 256, grid: int = 64):
        super().__init__()
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kv_in_dim, dim)
        self.v_proj = nn.Linear(kv_in_dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        cos, sin = axial_rope_tables(dim, grid, grid)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, exclude: int = 0,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = rotate(self.q_proj(q), self.cos, self.sin)
        k, v = self.k_proj(k), self.v_proj(v)
        n_rope, n = k.shape[1] - exclude, self.cos.shape[0]
        # Each whole grid of keys turns like the queries: broadcast the tables, never tile them
        # (tiled tables would be folded into large graph constants).
        k_rope = rotate(k[:, :n_rope].reshape(-1, n, k.shape[-1]), self.cos, self.sin)
        k_rope = k_rope.reshape(k.shape[0], n_rope, k.shape[-1])
        k = torch.cat([k_rope, k[:, n_rope:]], dim=1) if exclude else k_rope
        mask = None if key_mask is None else key_mask.unsqueeze(1)  # 1 x 1 x M
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out)


class MemoryAttentionLayer(nn.Module):
    """Self-attention (RoPE), cross-attention to the memory (RoPE on spatial keys), ReLU MLP;
    pre-norm, residual. Keys ``self_attn``, ``cross_attn_image``, ``linear1/2``, ``norm1..3``."""

    def __init__(self, dim: int = 256, mem_dim: int = 64, ff: int = 2048):
        super().__init__()
        self.self_attn = RoPEAttention(dim, dim)
        self.cross_attn_image = RoPEAttention(dim, mem_dim)
        self.linear1 = nn.Linear(dim, ff)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                exclude: int, key_mask: torch.Tensor | None) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y)
        y = self.norm2(x)
        x = x + self.cross_attn_image(y, memory + memory_pos, memory, exclude, key_mask)
        return x + self.linear2(torch.relu(self.linear1(self.norm3(x))))


class MemoryAttention(nn.Module):
    """``MemoryAttention``: current tokens ``1xNxC`` (+ 0.1 x their sine PE) attend to memory
    tokens ``1xMx64`` with positions ``1xMx64``; 4 layers, final LayerNorm -> ``1xNxC``."""

    def __init__(self, dim: int = 256, mem_dim: int = 64, num_layers: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(dim, mem_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, curr: torch.Tensor, curr_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, exclude: int = 0,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = curr + 0.1 * curr_pos
        for layer in self.layers:
            x = layer(x, memory, memory_pos, exclude, key_mask)
        return self.norm(x)


class MaskDownSampler(nn.Module):
    """``1x1x1024x1024`` mask -> ``1x256x64x64``: 4 x [Conv 3x3 s2 p1, LayerNorm2d, GELU]
    (channels 1, 4, 16, 64, 256), then a 1x1 conv (keys ``encoder.0 .. encoder.12``)."""

    def __init__(self, dim: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for _ in range(4):
            layers += [nn.Conv2d(c, c * 4, 3, 2, 1), LayerNorm2d(c * 4), nn.GELU()]
            c *= 4
        layers.append(nn.Conv2d(c, dim, 1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7, LayerNorm2d (eps 1e-6), Linear C->4C, GELU, Linear
    4C->C, ``gamma`` scale, residual; ``BxCxHxW`` -> same."""

    def __init__(self, dim: int = 256):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    def __init__(self, dim: int = 256, num_layers: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """``MemoryEncoder``: frame feature ``1x256x64x64`` + mask (already scaled, ``1x1x1024x1024``)
    -> memory features ``1x64x64x64``. Keys ``mask_downsampler``, ``pix_feat_proj``, ``fuser``,
    ``out_proj``; its position encoding is the constant :func:`sine_position_encoding` (64)."""

    def __init__(self, dim: int = 256, out_dim: int = 64):
        super().__init__()
        self.mask_downsampler = MaskDownSampler(dim)
        self.pix_feat_proj = nn.Conv2d(dim, dim, 1)
        self.fuser = Fuser(dim)
        self.out_proj = nn.Conv2d(dim, out_dim, 1)

    def forward(self, pix_feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask)
        return self.out_proj(self.fuser(x))


def slot_key_mask(memory_valid: torch.Tensor, tokens_per_slot: int, obj_ptr_valid: torch.Tensor,
                  tokens_per_ptr: int) -> torch.Tensor:
    """Additive attention mask ``1 x L`` of the static memory slots: 0 for the tokens of valid
    spatial slots and pointers, ``-inf`` for empty ones (they drop out of the softmax exactly)."""
    valid = torch.cat([memory_valid.repeat_interleave(tokens_per_slot),
                       obj_ptr_valid.repeat_interleave(tokens_per_ptr)])
    return torch.where(valid > 0, torch.zeros_like(valid), torch.full_like(valid, float("-inf"))).unsqueeze(0)
