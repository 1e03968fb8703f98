"""RepViT image encoders of EdgeSAM and RepViT-SAM, re-implemented for export (torch).

Same module tree, parameter names and state-dict order as the official encoders, so the
``image_encoder.*`` entries of an official checkpoint (prefix stripped) load strictly,
including every BatchNorm's running statistics and ``num_batches_tracked``.

Inference only and export-friendly: static shapes fixed at construction, no tensor-to-Python
conversions, no data-dependent branches, no drop-path, plain torch ops (exact-erf GELU, ReLU,
sigmoid, 1x1/3x3 convolutions, one 2x upsample). Exports with
``torch.onnx.export(..., dynamo=False, opset_version=17)``.

Shapes for a ``1x3x1024x1024`` input:

==============  ==================================  ===================================
part            EdgeSAM (RepViT-m1 + FPN)           RepViT-SAM (m2.3-like, stride 16)
==============  ==================================  ===================================
stem            48 x 256x256                        80 x 256x256
stage 0         blocks 1-3, 48 x 256x256            blocks 1-7, 80 x 256x256
stage 1         blocks 4-7, 96 x 128x128            blocks 8-15, 160 x 128x128
stage 2         blocks 8-23, 192 x 64x64            blocks 16-51, 320 x 64x64
stage 3         blocks 24-26, 384 x 32x32           blocks 52-54, 640 x 64x64 (stride 1)
fusion          1x1(s2) + up2x(1x1(s3)) -> 256      -
neck            SAM neck -> 256 x 64x64             SAM neck 640 -> 256 x 64x64
==============  ==================================  ===================================

The two families differ in the re-parameterizable depthwise mixer: EdgeSAM's is
``bn3(dw3x3(x)) + bn1(dw1x1(x)) + x``, RepViT-SAM's is ``bn(bn3(dw3x3(x)) + dw1x1_bias(x) + x)``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Conv2dBN, interpolate, sam_neck, spatial_mean

__all__ = ["edge_sam_encoder", "repvit_sam_encoder", "fuse_batchnorm", "RepViTEncoder"]

#: One entry per block: (output channels, stride, use SE). Stride 2 (or a channel change)
#: means a "downsample" block; stride-1 downsample blocks keep the resolution.
BlockCfg = tuple[int, int, bool]


def _stage(channels: int, n: int, se_every_other: bool = True, no_se_tail: int = 1,
           stride: int = 2, first: bool = False) -> list[BlockCfg]:
    """A stage: one downsample block (no SE) unless ``first``, then ``n`` stride-1 blocks.

    The stride-1 blocks carry SE on every other block starting with the first, except the
    last ``no_se_tail`` blocks.
    """
    cfg: list[BlockCfg] = [] if first else [(channels, stride, False)]
    for i in range(n):
        cfg.append((channels, 1, se_every_other and i % 2 == 0 and i < n - no_se_tail))
    return cfg


#: EdgeSAM's RepViT-m1: 26 blocks, SE on 1, 5, 9, 11, ..., 21 and 25.
EDGE_SAM_CFG: list[BlockCfg] = (
    _stage(48, 3, first=True) + _stage(96, 3) + _stage(192, 15, no_se_tail=2) + _stage(384, 2)
)
#: RepViT-SAM: 54 blocks, SE on 1/3/5, 9/11/13, odd 17..49 and 53; block 52 keeps stride 1.
REPVIT_SAM_CFG: list[BlockCfg] = (
    _stage(80, 7, first=True) + _stage(160, 7) + _stage(320, 35, no_se_tail=2)
    + _stage(640, 2, stride=1)
)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """timm ``make_divisible(v, divisor, round_limit=0)``: nearest multiple, at least ``divisor``."""
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """timm-style SE on ``BxCxHxW``: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`` (keys ``fc1``, ``fc2``)."""

    def __init__(self, channels: int):
        super().__init__()
        rd = _make_divisible(channels * 0.25)
        self.fc1 = nn.Conv2d(channels, rd, 1)
        self.fc2 = nn.Conv2d(rd, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = spatial_mean(x)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class RepVGGDW(nn.Module):
    """EdgeSAM's mixer on ``BxCxHxW``: ``conv(x) + conv1(x) + x`` (3x3 and 1x1 depthwise Conv2dBN)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = Conv2dBN(dim, dim, 3, 1, 1, groups=dim)
        self.conv1 = Conv2dBN(dim, dim, 1, 1, 0, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv1(x) + x


class RepVGGDWNorm(nn.Module):
    """RepViT-SAM's mixer on ``BxCxHxW``: ``bn(conv(x) + conv1(x) + x)``, ``conv1`` a biased 1x1 dw conv."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = Conv2dBN(dim, dim, 3, 1, 1, groups=dim)
        self.conv1 = nn.Conv2d(dim, dim, 1, 1, 0, groups=dim)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x) + self.conv1(x) + x)


class Residual(nn.Module):
    """``x + m(x)`` (key ``m``)."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class RepViTBlock(nn.Module):
    """``BxCinxHxW`` -> ``BxCoutx(H/s)x(W/s)``: ``channel_mixer(token_mixer(x))``.

    Stride-1 identity block: token mixer ``[RepVGGDW, SE|Identity]``. Downsample block:
    ``[3x3 dw Conv2dBN (stride s), SE|Identity, 1x1 Conv2dBN Cin->Cout]``, no residual.
    Channel mixer (both): ``x + Conv2dBN(2C->C)(GELU(Conv2dBN(C->2C)(x)))``.
    """

    def __init__(self, inp: int, oup: int, stride: int, use_se: bool, norm_mixer: bool):
        super().__init__()
        se: nn.Module = SqueezeExcite(inp) if use_se else nn.Identity()
        if stride == 1 and inp == oup:
            dw: nn.Module = RepVGGDWNorm(inp) if norm_mixer else RepVGGDW(inp)
            self.token_mixer = nn.Sequential(dw, se)
        else:
            self.token_mixer = nn.Sequential(
                Conv2dBN(inp, inp, 3, stride, 1, groups=inp), se, Conv2dBN(inp, oup, 1, 1, 0))
        self.channel_mixer = Residual(nn.Sequential(
            Conv2dBN(oup, 2 * oup), nn.GELU(), Conv2dBN(2 * oup, oup)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mixer(self.token_mixer(x))


class FpnBranch(nn.Module):
    """``BxCx32x32`` -> ``Bx256x64x64``: 1x1 conv (key ``op_list.0``), then a 2x upsample.

    ``mode`` is ``"bicubic"`` (PyTorch cubic, a=-0.75) or ``"bilinear"``; half-pixel centres
    (``align_corners=False``), which ONNX exports as ``Resize`` (cubic/linear, half_pixel).
    """

    def __init__(self, in_ch: int, out_ch: int, mode: str):
        super().__init__()
        self.op_list = nn.ModuleList([nn.Conv2d(in_ch, out_ch, 1, bias=False)])
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.op_list[0](x)
        return interpolate(x, (2 * x.shape[-2], 2 * x.shape[-1]), self.mode)


class RepViTEncoder(nn.Module):
    """``Bx3x1024x1024`` normalized image -> ``Bx256x64x64`` embeddings.

    ``features.0`` is the stem (Conv2dBN s2, GELU, Conv2dBN s2), ``features.1..N`` the blocks of
    ``cfg``. With ``fpn_mode`` set (EdgeSAM), the neck input is
    ``fuse_stage2(last 64x64 block) + fuse_stage3(last block)``; otherwise it is the last block.
    """

    def __init__(self, cfg: list[BlockCfg], norm_mixer: bool, fpn_mode: str | None = None):
        super().__init__()
        c0 = cfg[0][0]
        layers: list[nn.Module] = [nn.Sequential(Conv2dBN(3, c0 // 2, 3, 2, 1), nn.GELU(),
                                                 Conv2dBN(c0 // 2, c0, 3, 2, 1))]
        inp = c0
        for oup, stride, use_se in cfg:
            layers.append(RepViTBlock(inp, oup, stride, use_se, norm_mixer))
            inp = oup
        self.features = nn.ModuleList(layers)
        # Index into ``features`` of the last block before the last channel change (stage 2).
        self.stage2_index = max(i for i, (c, _, _) in enumerate(cfg, 1) if c != inp)
        self.use_fpn = fpn_mode is not None
        if fpn_mode is not None:
            if fpn_mode not in ("bicubic", "bilinear"):
                raise ValueError(f"upsample_mode must be 'bicubic' or 'bilinear', got {fpn_mode!r}")
            self.fuse_stage2 = nn.Conv2d(cfg[self.stage2_index - 1][0], 256, 1, bias=False)
            self.fuse_stage3 = FpnBranch(inp, 256, fpn_mode)
            neck_in = 256
        else:
            neck_in = inp
        self.neck = sam_neck(neck_in, 256)

    def backbone(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Bx3xHxW`` -> (stage-2 output, last-block output) before fusion and neck."""
        stage2 = x
        for i, f in enumerate(self.features):
            x = f(x)
            if i == self.stage2_index:
                stage2 = x
        return stage2, x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stage2, x = self.backbone(x)
        if self.use_fpn:
            x = self.fuse_stage2(stage2) + self.fuse_stage3(x)
        return self.neck(x)


def edge_sam_encoder(upsample_mode: str = "bicubic") -> nn.Module:
    """EdgeSAM's encoder (RepViT-m1, 2-level FPN): ``1x3x1024x1024`` -> ``1x256x64x64``.

    The official PyTorch model upsamples with ``"bicubic"``; the official ONNX/CoreML export
    scripts build it with ``"bilinear"`` (the two give different embeddings).
    """
    return RepViTEncoder(EDGE_SAM_CFG, norm_mixer=False, fpn_mode=upsample_mode)


def repvit_sam_encoder() -> nn.Module:
    """RepViT-SAM's encoder (RepViT m2.3-like, stride 16): ``1x3x1024x1024`` -> ``1x256x64x64``."""
    return RepViTEncoder(REPVIT_SAM_CFG, norm_mixer=True)


# ----------------------------------------------------------------------------------------------
# Optional inference-time re-parameterization (changes the state-dict keys; run after loading).


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A biased ``Conv2d`` equal to ``bn(conv(x))`` in eval mode."""
    scale, shift = _bn_scale_shift(bn)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    out = copy.deepcopy(conv)
    out.weight = nn.Parameter(conv.weight * scale[:, None, None, None])
    out.bias = nn.Parameter(bias * scale + shift)
    return out


def _fold_repvgg(m: RepVGGDW | RepVGGDWNorm) -> nn.Conv2d:
    """One 3x3 depthwise biased conv equal to the whole mixer (identity and 1x1 branch folded in)."""
    conv = _fold(m.conv.c, m.conv.bn)  # type: ignore[arg-type]
    one = _fold(m.conv1.c, m.conv1.bn) if isinstance(m, RepVGGDW) else m.conv1  # type: ignore[arg-type]
    assert conv.bias is not None and one.bias is not None
    w = conv.weight + F.pad(one.weight, [1, 1, 1, 1])
    w[:, 0, 1, 1] += 1.0  # identity
    conv.weight.copy_(w)
    conv.bias.copy_(conv.bias + one.bias)
    return _fold(conv, m.bn) if isinstance(m, RepVGGDWNorm) else conv


@torch.no_grad()
def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every ``Conv2dBN`` and RepVGGDW mixer of ``module`` into plain biased convs, in place.

    For eval-mode inference only (same output to ~1e-5 relative); the result no longer
    loads official checkpoints. Returns ``module``.
    """
    for name, child in module.named_children():
        if isinstance(child, (RepVGGDW, RepVGGDWNorm)):
            setattr(module, name, _fold_repvgg(child))
        elif isinstance(child, Conv2dBN):
            setattr(module, name, _fold(child.c, child.bn))  # type: ignore[arg-type]
        else:
            fuse_batchnorm(child)
    return module
