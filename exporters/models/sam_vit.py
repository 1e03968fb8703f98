"""SAM's ViT image encoder (ViT-B/L/H and pruned SlimSAM-style variants), export-friendly.

Key names equal segment-anything's ``ImageEncoderViT`` so official checkpoints load
unchanged. Differences from the official code are in form only: static shapes (the
window padding is computed from Python ints at construction), relative-position
tables gathered with constant index tensors, and no Python control flow on tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import MLPBlock, sam_neck


def _rel_pos_index(size: int) -> torch.Tensor:
    """``size x size`` indices ``i - j + size - 1`` into a ``(2*size-1, C)`` table."""
    coords = torch.arange(size)
    return coords[:, None] - coords[None, :] + (size - 1)


class Attention(nn.Module):
    """Multi-head attention with decomposed relative position bias.

    Input/output ``B x H x W x C``; the relative tables are ``(2*H-1) x head_dim``.
    """

    idx_h: torch.Tensor
    idx_w: torch.Tensor

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int],
                 head_dim: int | None = None, qkv_dim: int | None = None):
        super().__init__()
        self.num_heads = num_heads
        inner = qkv_dim if qkv_dim is not None else dim
        self.head_dim = head_dim if head_dim is not None else inner // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * num_heads * self.head_dim, bias=True)
        self.proj = nn.Linear(num_heads * self.head_dim, dim)
        self.input_size = input_size
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, self.head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, self.head_dim))
        self.register_buffer("idx_h", _rel_pos_index(input_size[0]), persistent=False)
        self.register_buffer("idx_w", _rel_pos_index(input_size[1]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        nh, hd = self.num_heads, self.head_dim
        qkv = self.qkv(x).reshape(b, h * w, 3, nh, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each B x nh x HW x hd
        attn = (q * self.scale) @ k.transpose(-2, -1)
        rh = self.rel_pos_h[self.idx_h]  # H x H x hd
        rw = self.rel_pos_w[self.idx_w]  # W x W x hd
        rq = q.reshape(b, nh, h, w, hd)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", rq, rh)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", rq, rw)
        # Batch and heads share one axis: Core ML takes tensors of rank <= 5 (same sums).
        attn = (attn.reshape(b * nh, h, w, h, w) + rel_h.reshape(b * nh, h, w, h, 1)
                + rel_w.reshape(b * nh, h, w, 1, w))
        attn = attn.reshape(b, nh, h * w, h * w).softmax(dim=-1)
        out = (attn @ v).reshape(b, nh, h, w, hd).permute(0, 2, 3, 1, 4).reshape(b, h, w, nh * hd)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block; ``window_size > 0`` runs attention in padded windows.

    ``grid`` is the token grid (64 for a 1024 input) so padding is static.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, window_size: int, grid: int,
                 head_dim: int | None = None, qkv_dim: int | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        size = window_size if window_size > 0 else grid
        self.attn = Attention(dim, num_heads, (size, size), head_dim=head_dim, qkv_dim=qkv_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.window_size = window_size
        self.pad = (window_size - grid % window_size) % window_size if window_size > 0 else 0

    def _windowed(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws, p = self.window_size, self.pad
        x = F.pad(x, (0, 0, 0, p, 0, p))  # zero tokens join the last windows, unmasked
        hp, wp = h + p, w + p
        nwh, nww = hp // ws, wp // ws
        win = x.reshape(b, nwh, ws, nww, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)
        win = self.attn(win)
        x = win.reshape(b, nwh, nww, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        return x[:, :h, :w, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        y = self._windowed(y) if self.window_size > 0 else self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # B x H x W x C


class ImageEncoderViT(nn.Module):
    """ViT image encoder: ``1x3xSxS`` normalized image -> ``1x256x(S/16)x(S/16)``.

    ``mlp_dims``/``head_dims``/``qkv_dims`` may be given per block for pruned models
    (SlimSAM); by default every block uses ``embed_dim * 4``, ``embed_dim // heads``.
    """

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
        img_size: int = 1024,
        patch_size: int = 16,
        window_size: int = 14,
        out_chans: int = 256,
        mlp_dims: Sequence[int] | None = None,
        head_dims: Sequence[int | None] | None = None,
        qkv_dims: Sequence[int | None] | None = None,
    ):
        super().__init__()
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        mlp_dims = list(mlp_dims) if mlp_dims is not None else [embed_dim * 4] * depth
        head_dims = list(head_dims) if head_dims is not None else [None] * depth
        qkv_dims = list(qkv_dims) if qkv_dims is not None else [None] * depth
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_dims[i],
                  0 if i in global_attn_indexes else window_size, grid,
                  head_dim=head_dims[i], qkv_dim=qkv_dims[i])
            for i in range(depth)
        )
        self.neck = sam_neck(embed_dim, out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))


#: Official configurations: embed_dim, depth, num_heads, global attention block indexes.
VIT_CONFIGS: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


def vit_encoder(name: str) -> ImageEncoderViT:
    dim, depth, heads, global_idx = VIT_CONFIGS[name]
    return ImageEncoderViT(embed_dim=dim, depth=depth, num_heads=heads,
                           global_attn_indexes=global_idx)
