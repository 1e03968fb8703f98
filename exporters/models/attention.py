"""SAM's decoder attention: optional channel downsampling of q/k/v, heads, softmax (torch).

Key names equal segment-anything's ``Attention`` (``q_proj``, ``k_proj``, ``v_proj``,
``out_proj``). Shapes: queries ``BxNxC``, keys/values ``BxMxC`` -> ``BxNxC``. The
reassociated token<->image forms of the same math are in :mod:`.cross_attention`.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Attention(nn.Module):
    """Attention with optional channel downsampling of q/k/v (SAM's decoder attention).

    ``proj_order`` only orders the projections' state-dict keys: EdgeSAM's checkpoint lists
    ``q_proj, v_proj, k_proj``.
    """

    q_proj: nn.Linear
    k_proj: nn.Linear
    v_proj: nn.Linear
    head_eye: torch.Tensor

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1,
                 proj_order: str = "qkv"):
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        for p in proj_order:  # registration order = state-dict key order (EdgeSAM: "qvk")
            setattr(self, f"{p}_proj", nn.Linear(embedding_dim, self.internal_dim))
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        # The heads' identity, 1 x h x 1 x h x 1, for block-diagonal layouts (cross_attention.py);
        # not a checkpoint key.
        self.register_buffer("head_eye", torch.eye(num_heads).reshape(1, num_heads, 1, num_heads, 1),
                             persistent=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.attend(self.q_proj(q), self.k_proj(k), self.v_proj(v))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of already projected ``q`` ``BxNxD``, ``k``/``v`` ``BxMxD`` (``B`` may
        broadcast) -> ``BxNxC``."""
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        attn = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        out = attn.softmax(dim=-1) @ v
        b, nh, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, nh * c))
