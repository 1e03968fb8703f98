"""EfficientViT-SAM image encoders (L0, L1, L2, XL0, XL1), re-implemented for export (torch).

Same module tree, parameter names and state-dict order as the official ``image_encoder`` of
``create_efficientvit_sam_model("efficientvit-sam-<name>")`` (mit-han-lab/efficientvit), so the
``image_encoder.*`` entries of an official checkpoint (prefix stripped) load strictly, BatchNorm
running statistics and ``num_batches_tracked`` included. Parameter-free parts (activations,
identity shortcuts, the neck's upsampling) carry no state and are plain attributes or code here.

Numerics follow the official model as built by its zoo: tanh-approximate GELU everywhere,
BatchNorm eps 1e-6, final LayerNorm2d eps 1e-6, ReLU linear attention (LiteMLA) in fp32 with
eps 1e-15, bicubic (A=-0.75, half-pixel) neck upsampling to 64x64, skipped for maps already
64x64. Inference only, no data-dependent branches, static shapes: the input size S is fixed at
construction (attention reshapes and neck resizes depend on it; the batch dimension is free).
Exports with ``torch.onnx.export(..., dynamo=False, opset_version=17)``; the ONNX target then
writes each tanh GELU as one opset-20 ``Gelu`` (``exporters.targets.onnx.nchwc``).

Shapes (``S`` = 512 for L*, 1024 for XL*; ``s<i>`` = backbone stage ``i``, stride ``2**(i+1)``):

=======  =========================  ======================================  ====================
variant  widths (stage 0..last)     depths                                  neck inputs -> 256
=======  =========================  ======================================  ====================
l0       32 64 128 256 512          1 1 1 4 4, head 4 x fmb(expand 1)       s4 16², s3 32², s2 64²
l1       32 64 128 256 512          1 1 1 6 6, head 8 x fmb(expand 1)       s4 16², s3 32², s2 64²
l2       32 64 128 256 512          1 2 2 8 8, head 12 x fmb(expand 1)      s4 16², s3 32², s2 64²
xl0      32 64 128 256 512 1024     0 1 1 2 3 3, head 6 x fmb(expand 4)     s5 16², s4 32², s3 64²
xl1      32 64 128 256 512 1024     1 2 2 4 6 6, head 12 x fmb(expand 4)    s5 16², s4 32², s3 64²
=======  =========================  ======================================  ====================

    image 1x3xSxS -> backbone -> neck (1x1 conv+BN, bicubic to 64x64, add, head, 1x1 conv)
          -> LayerNorm2d -> image_embeddings 1x256x64x64
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .layers import LayerNorm2d, interpolate

__all__ = ["efficientvit_sam_encoder", "EfficientViTSamEncoder", "EfficientViTSamConfig",
           "EFFICIENTVIT_SAM_CONFIGS"]

BN_EPS = 1e-6
ATTN_EPS = 1e-15
EMBED_SIZE = 64


@dataclass(frozen=True)
class EfficientViTSamConfig:
    """One official variant: backbone lists (one entry per stage) and the SAM neck."""

    image_size: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    blocks: tuple[str, ...]  # "res", "fmb", "mb", or "att@<k>" (k = aggregation kernel)
    expands: tuple[float, ...]
    fewer_norm: tuple[bool, ...]
    neck_stages: tuple[int, ...]  # backbone stages fed to the neck, in merge order
    head_depth: int
    head_expand: float


def _large(depths: tuple[int, ...], head_depth: int) -> EfficientViTSamConfig:
    """An L-series variant (EfficientViT-L backbone, 512x512 input)."""
    return EfficientViTSamConfig(
        512, widths=(32, 64, 128, 256, 512), depths=depths, blocks=("res", "fmb", "fmb", "mb", "att@5"),
        expands=(1, 4, 4, 4, 6), fewer_norm=(False, False, False, True, True), neck_stages=(4, 3, 2),
        head_depth=head_depth, head_expand=1)


def _xlarge(depths: tuple[int, ...], head_depth: int) -> EfficientViTSamConfig:
    """An XL-series variant (six-stage backbone, 1024x1024 input)."""
    return EfficientViTSamConfig(
        1024, widths=(32, 64, 128, 256, 512, 1024), depths=depths,
        blocks=("res", "fmb", "fmb", "fmb", "att@3", "att@3"), expands=(1, 4, 4, 4, 4, 6),
        fewer_norm=(False, False, False, False, True, True), neck_stages=(5, 4, 3),
        head_depth=head_depth, head_expand=4)


EFFICIENTVIT_SAM_CONFIGS: dict[str, EfficientViTSamConfig] = {
    "l0": _large((1, 1, 1, 4, 4), 4),
    "l1": _large((1, 1, 1, 6, 6), 8),
    "l2": _large((1, 2, 2, 8, 8), 12),
    "xl0": _xlarge((0, 1, 1, 2, 3, 3), 6),
    "xl1": _xlarge((1, 2, 2, 4, 6, 6), 12),
}


class TanhGelu(nn.Module):
    """``nn.GELU(approximate="tanh")`` in the form onnxruntime's FastGeluFusion matches,
    ``x * 0.5 * (1 + tanh(sqrt(2/pi) * x * (1 + 0.044715 * x * x)))``, so the exported graph
    runs one FastGelu kernel instead of 8 element-wise ops (torch's own export, with ``Pow``,
    is left unfused: 181 Mul nodes were 17% of EfficientViT-SAM-L0's encoder time). The ONNX
    target replaces this form with ``Gelu(approximate="tanh")`` (``exporters.targets.onnx.nchwc``);
    TensorRT-ready graphs keep it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * x * (1.0 + 0.044715 * x * x)))


def _gelu() -> nn.Module:
    return TanhGelu()


class ConvNormAct(nn.Module):
    """``conv`` (k x k, padding k//2) -> optional ``norm`` (BatchNorm2d) -> optional GELU(tanh).

    ``BxCinxHxW`` -> ``BxCoutx(H/stride)x(W/stride)``.
    """

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
                 bias: bool = False, norm: bool = True, act: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)
        self.norm = nn.BatchNorm2d(cout, eps=BN_EPS) if norm else None
        self.act = _gelu() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class OpSequential(nn.Module):
    """Modules applied in order (key ``op_list.<i>``)."""

    def __init__(self, ops: list[nn.Module]):
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class Residual(nn.Module):
    """``main(x) + x`` when ``shortcut``, else ``main(x)`` (key ``main``); no post-activation."""

    def __init__(self, main: nn.Module, shortcut: bool = True):
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x if self.shortcut else self.main(x)


class ResBlock(nn.Module):
    """3x3 conv+BN+GELU (stride here), 3x3 conv+BN: ``BxCinxHxW`` -> ``BxCoutx(H/s)x(W/s)``."""

    def __init__(self, cin: int, cout: int, stride: int, fewer_norm: bool):
        super().__init__()
        self.conv1 = ConvNormAct(cin, cin, 3, stride, bias=fewer_norm, norm=not fewer_norm, act=True)
        self.conv2 = ConvNormAct(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class FusedMBConv(nn.Module):
    """3x3 conv Cin->mid (+BN) +GELU (stride here), 1x1 conv mid->Cout +BN; mid = round(Cin*expand)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: float, fewer_norm: bool):
        super().__init__()
        mid = round(cin * expand)
        self.spatial_conv = ConvNormAct(cin, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm, act=True)
        self.point_conv = ConvNormAct(mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.spatial_conv(x))


class MBConv(nn.Module):
    """1x1 Cin->mid, depthwise 3x3 (stride here), 1x1 mid->Cout +BN; GELU after the first two.

    With ``fewer_norm`` the first two convs have a bias and no BN, else BN and no bias.
    """

    def __init__(self, cin: int, cout: int, stride: int, expand: float, fewer_norm: bool):
        super().__init__()
        mid = round(cin * expand)
        self.inverted_conv = ConvNormAct(cin, mid, 1, bias=fewer_norm, norm=not fewer_norm, act=True)
        self.depth_conv = ConvNormAct(mid, mid, 3, stride, groups=mid, bias=fewer_norm, norm=not fewer_norm,
                                      act=True)
        self.point_conv = ConvNormAct(mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class LiteMLA(nn.Module):
    """Multi-scale ReLU linear attention, ``BxCxHxW`` -> ``BxCxHxW`` (``C/dim`` heads of ``dim``).

    ``size`` = H = W is fixed at construction (static reshapes).

    ``qkv`` (1x1, C->3C) plus, per scale ``k``, an aggregated copy (depthwise k x k then a 1x1
    conv grouped per head-triple). Every 3*dim channel group of the concatenation is one head
    ``(q, k, v)``; out = ``(v1 @ relu(k)^T) @ relu(q)`` with ``v1`` = v padded with a row of ones,
    normalized by that last row (+eps), in fp32. Then ``proj`` 1x1 (heads*dim*(1+scales)) -> C +BN.
    """

    def __init__(self, channels: int, scales: tuple[int, ...], size: int, dim: int = 32):
        super().__init__()
        heads = channels // dim
        total = heads * dim
        # The official model uses linear attention only when H*W > dim (quadratic otherwise).
        if size * size <= dim:
            raise ValueError(f"{size}x{size} maps need quadratic attention, which is not implemented")
        self.dim, self.size, self.groups = dim, size, heads * (1 + len(scales))
        self.qkv = ConvNormAct(channels, 3 * total, 1, norm=False)
        self.aggreg = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3 * total, 3 * total, s, padding=s // 2, groups=3 * total, bias=False),
                          nn.Conv2d(3 * total, 3 * total, 1, groups=3 * heads, bias=False))
            for s in scales)
        self.proj = ConvNormAct(total * (1 + len(scales)), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [op(qkv) for op in self.aggreg], dim=1)
        t = qkv.float().reshape(-1, self.groups, 3 * self.dim, self.size * self.size)
        q = torch.relu(t[:, :, : self.dim])
        k = torch.relu(t[:, :, self.dim: 2 * self.dim])
        v = t[:, :, 2 * self.dim:]
        v = torch.cat([v, torch.ones_like(v[:, :, :1])], dim=2)  # pad a row of ones (a Pad-free graph)
        out = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)
        out = out[:, :, :-1] / (out[:, :, -1:] + ATTN_EPS)
        out = out.reshape(-1, self.groups * self.dim, self.size, self.size).to(qkv.dtype)
        return self.proj(out)


class EfficientViTBlock(nn.Module):
    """``x + LiteMLA(x)`` then ``x + MBConv(x)`` (fewer-norm MBConv): ``BxCxsizexsize`` -> same."""

    def __init__(self, channels: int, expand: float, scales: tuple[int, ...], size: int):
        super().__init__()
        self.context_module = Residual(LiteMLA(channels, scales, size))
        self.local_module = Residual(MBConv(channels, channels, 1, expand, fewer_norm=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


def _local_block(kind: str, cin: int, cout: int, stride: int, expand: float, fewer_norm: bool) -> nn.Module:
    if kind == "res":
        return ResBlock(cin, cout, stride, fewer_norm)
    if kind == "fmb":
        return FusedMBConv(cin, cout, stride, expand, fewer_norm)
    if kind == "mb":
        return MBConv(cin, cout, stride, expand, fewer_norm)
    raise ValueError(f"unknown block {kind!r}")


class EfficientViTLargeBackbone(nn.Module):
    """EfficientViT-L/XL backbone (key ``stages.<i>.op_list.<j>``).

    Stage 0: 3x3 stride-2 conv+BN+GELU, then ``depths[0]`` residual blocks. Stage ``i >= 1``: a
    stride-2 block without shortcut (the stage's block if mb/fmb, else mb; expand ``4*expands[i]``),
    then ``depths[i]`` residual blocks or EfficientViT blocks. ``1x3xSxS`` -> one feature map per
    stage, stage ``i`` being ``1 x widths[i] x S/2**(i+1) x S/2**(i+1)``.
    """

    def __init__(self, cfg: EfficientViTSamConfig):
        super().__init__()
        w0 = cfg.widths[0]
        stage0: list[nn.Module] = [ConvNormAct(3, w0, 3, 2, act=True)]
        stage0 += [Residual(_local_block(cfg.blocks[0], w0, w0, 1, cfg.expands[0], cfg.fewer_norm[0]))
                   for _ in range(cfg.depths[0])]
        stages = [OpSequential(stage0)]
        cin = w0
        for i in range(1, len(cfg.widths)):
            w, kind, expand, fewer = cfg.widths[i], cfg.blocks[i], cfg.expands[i], cfg.fewer_norm[i]
            down = kind if kind in ("mb", "fmb") else "mb"
            first = _local_block(down, cin, w, 2, expand * 4, fewer)
            ops: list[nn.Module] = [Residual(first, shortcut=False)]
            for _ in range(cfg.depths[i]):
                if kind.startswith("att@"):
                    ops.append(EfficientViTBlock(w, expand, (int(kind[4:]),), cfg.image_size >> (i + 1)))
                else:
                    ops.append(Residual(_local_block(kind, w, w, 1, expand, fewer)))
            stages.append(OpSequential(ops))
            cin = w
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class SamNeck(nn.Module):
    """Merges backbone maps into ``1x256x64x64`` (keys ``input_ops``, ``middle``, ``output_ops``).

    Per input: 1x1 conv+BN to 256, bicubic resize to 64x64 unless already 64x64; the inputs are
    added right to left (``a + (b + c)``); ``middle`` = ``head_depth`` residual FusedMBConv blocks;
    ``output_ops.0`` = 1x1 conv with bias.
    """

    def __init__(self, in_channels: list[int], in_sizes: list[int], head_depth: int, head_expand: float,
                 width: int = 256, out_dim: int = 256):
        super().__init__()
        self.resize = [size != EMBED_SIZE for size in in_sizes]  # static: fixed by the input size
        self.input_ops = nn.ModuleList(OpSequential([ConvNormAct(c, width, 1)]) for c in in_channels)
        self.middle = OpSequential([Residual(FusedMBConv(width, width, 1, head_expand, fewer_norm=False))
                                    for _ in range(head_depth)])
        out = ConvNormAct(width, out_dim, 1, bias=True, norm=False)
        self.output_ops = nn.ModuleList([OpSequential([out])])

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        maps = []
        for op, f, resize in zip(self.input_ops, feats, self.resize, strict=True):
            y = op(f)
            if resize:
                y = interpolate(y, (EMBED_SIZE, EMBED_SIZE), "bicubic")
            maps.append(y)
        x = maps[-1]
        for y in reversed(maps[:-1]):
            x = y + x
        x = self.middle(x)
        return self.output_ops[0](x)


class EfficientViTSamEncoder(nn.Module):
    """``image`` ``1x3xSxS`` (normalized, zero-padded) -> ``image_embeddings`` ``1x256x64x64``.

    Keys ``backbone.*``, ``neck.*``, ``norm.*`` as in the official ``image_encoder``.
    """

    def __init__(self, cfg: EfficientViTSamConfig):
        super().__init__()
        self.image_size = cfg.image_size
        self.neck_stages = cfg.neck_stages
        self.backbone = EfficientViTLargeBackbone(cfg)
        sizes = [cfg.image_size >> (i + 1) for i in cfg.neck_stages]
        self.neck = SamNeck([cfg.widths[i] for i in cfg.neck_stages], sizes, cfg.head_depth, cfg.head_expand)
        self.norm = LayerNorm2d(256, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        return self.norm(self.neck([feats[i] for i in self.neck_stages]))


def efficientvit_sam_encoder(name: str) -> EfficientViTSamEncoder:
    """The image encoder of EfficientViT-SAM ``name`` in {"l0", "l1", "l2", "xl0", "xl1"}.

    Input ``1x3xSxS`` float32 with S = 512 (L*) or 1024 (XL*), output ``1x256x64x64``.
    """
    if name not in EFFICIENTVIT_SAM_CONFIGS:
        raise ValueError(f"unknown EfficientViT-SAM variant {name!r}; expected one of "
                         f"{sorted(EFFICIENTVIT_SAM_CONFIGS)}")
    return EfficientViTSamEncoder(EFFICIENTVIT_SAM_CONFIGS[name])
