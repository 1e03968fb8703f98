"""EdgeTAM's spatial perceiver (``PerceiverResampler``): official key names and shapes.

Depth 2, dim 64, 1 head, FF multiplier 4, latent self-attention on: 256 learned 1-D latents
(``latents``) and 256 2-D latents (``latents_2d``, one per 4x4 window of the 64x64 memory).
Image mode leaves it idle; the video-mode forward is not implemented yet.
"""

from __future__ import annotations

import torch
from torch import nn


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


class SelfAttention(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)


class PerceiverLayer(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.attn = PerceiverAttention(dim)
        self.ff = _ff(dim)
        self.self_attn = SelfAttention(dim)
        self.self_ff = _ff(dim)


class PerceiverResampler(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 2, num_latents: int = 256):
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(num_latents, dim))
        self.latents_2d = nn.Parameter(torch.zeros(num_latents, dim))
        self.layers = nn.ModuleList(PerceiverLayer(dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
