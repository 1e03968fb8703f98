"""EdgeTAM's spatial perceiver (``PerceiverResampler``): official key names and shapes.

Depth 2, dim 64, 1 head, FF multiplier 4, latent self-attention on: 256 learned 1-D latents
(``latents``) and 256 2-D latents (``latents_2d``, one per 4x4 window of the 64x64 memory).
Each frame's memory ``1x64x64x64`` becomes 512 tokens: the 1-D latents attend to all 4096
positions (the memory's sine position encoding added to keys and values; their own output
position is zero), then each 2-D latent attends to its own 4x4 window (no position), and its
output position is the sine encoding of the 16x16 latent map. Image mode leaves it idle.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .sam2_memory import sine_position_encoding


def _ff(dim: int, mult: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def forward(self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        latents = self.norm_latents(latents)
        k, v = self.to_kv(self.norm_x(x)).chunk(2, dim=-1)
        if pos is not None:
            k, v = k + pos, v + pos
        return self.to_out(F.scaled_dot_product_attention(self.to_q(latents), k, v))


class SelfAttention(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        k, v = self.to_kv(x).chunk(2, dim=-1)
        return self.to_out(F.scaled_dot_product_attention(self.to_q(x), k, v))


class PerceiverLayer(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.attn = PerceiverAttention(dim)
        self.ff = _ff(dim)
        self.self_attn = SelfAttention(dim)
        self.self_ff = _ff(dim)

    def forward(self, latents: torch.Tensor, x: torch.Tensor,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        latents = self.attn(latents, x, pos) + latents
        latents = self.ff(latents) + latents
        latents = self.self_attn(latents) + latents
        return self.self_ff(latents) + latents


class PerceiverResampler(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 2, num_latents: int = 256):
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(num_latents, dim))
        self.latents_2d = nn.Parameter(torch.zeros(num_latents, dim))
        self.grid = math.isqrt(num_latents)  # the 2-D latents' side (16: a 16x16 grid of windows)
        self.layers = nn.ModuleList(PerceiverLayer(dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``, ``pos`` ``Bx64x64x64`` -> tokens and their positions ``Bx512x64``."""
        b, c, h, w = x.shape
        flat = x.flatten(2).transpose(1, 2)
        lat = self.latents.unsqueeze(0).expand(b, -1, -1)
        p = pos.flatten(2).transpose(1, 2)
        for layer in self.layers:
            lat = layer(lat, flat, p)
        n = self.grid
        ws = h // n
        win = x.reshape(b, c, n, ws, n, ws).permute(0, 2, 4, 3, 5, 1).reshape(b * n * n, ws * ws, c)
        lat2 = self.latents_2d.unsqueeze(0).expand(b, -1, -1).reshape(b * n * n, 1, c)
        for layer in self.layers:
            lat2 = layer(lat2, win)
        lat2 = lat2.reshape(b, n * n, c)
        pos2 = sine_position_encoding(c, n, n).to(x.dtype).flatten(2).transpose(1, 2).expand(b, -1, -1)
        tokens = torch.cat([self.norm(lat), self.norm(lat2)], dim=1)
        return tokens, torch.cat([torch.zeros_like(lat), pos2], dim=1)
