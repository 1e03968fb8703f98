"""Small building blocks shared by the encoder and decoder families (torch)."""

from __future__ import annotations

import torch
from torch import nn


def exporting() -> bool:
    """True while tracing for ONNX or running under ``torch.export`` (LiteRT, Core ML)."""
    return bool(torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting())


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """``x.mean((2, 3), keepdim=True)`` of ``BxCxHxW`` (squeeze-excite), ``BxCx1x1``.

    Eager: the official op, so results stay bit-close to the official model. Exported: the mean
    over W as a MatMul, then over H. onnxruntime's ReduceMean and LiteRT's MEAN on an NHWC tensor
    sum all H*W values in one sequential fp32 sum (1e-5 relative at 256x256, and 10x torch's
    error on EdgeTAM's 64x64 maps), which the synthetic-weight RepViT encoders amplify ~2x per
    block; two short sums keep the gate within 5e-7. (A MatMul, not two ReduceMeans: onnxsim
    merges chained ReduceMeans back into one.)
    """
    if not exporting():
        return x.mean((2, 3), keepdim=True)
    w = x.shape[-1]
    return torch.matmul(x, x.new_full((w, 1), 1.0 / w)).mean(2, keepdim=True)


def interpolate(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``F.interpolate(x, size, mode, align_corners=False)`` (``bilinear`` or ``bicubic``, no
    antialias) as two MatMuls with constant resampling matrices (``x`` ``BxCxHxW``, static).

    The same math (PyTorch's taps and edge clamping, :mod:`edge_sam_sdk.resize`); graph
    runtimes run a small MatMul far faster than a cubic ``Resize`` (EdgeSAM's neck: 10% of
    its encoder time in onnxruntime). The matrices are trace-time constants, not state.
    """
    from edge_sam_sdk.resize import matrix

    rule = {"bilinear": "torch_bilinear", "bicubic": "torch_bicubic"}[mode]
    (h, w), (oh, ow) = (int(d) for d in x.shape[-2:]), (int(d) for d in size)
    ry = torch.from_numpy(matrix(h, oh, rule).astype("float32")).to(x.dtype)
    rx = torch.from_numpy(matrix(w, ow, rule).T.astype("float32")).to(x.dtype)
    return ry @ (x @ rx)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a ``BxCxHxW`` tensor (segment-anything's form)."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Conv2dBN(nn.Sequential):
    """Bias-free ``Conv2d`` (key ``c``) then ``BatchNorm2d`` (key ``bn``, eps 1e-5), as TinyViT
    and RepViT name them; shape-agnostic."""

    def __init__(self, in_ch: int, out_ch: int, ks: int = 1, stride: int = 1, pad: int = 0,
                 groups: int = 1):
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, ks, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU between them (keys ``layers.<i>``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int,
                 sigmoid_output: bool = False):
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class MLPBlock(nn.Module):
    """Transformer MLP: ``lin1``, activation, ``lin2`` (GELU in encoders, ReLU in SAM's decoder)."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()  # parameter-free: adds no state-dict keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


def sam_neck(in_dim: int, out_dim: int = 256) -> nn.Sequential:
    """SAM's encoder neck: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d (keys ``neck.0..3``)."""
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, kernel_size=1, bias=False),
        LayerNorm2d(out_dim),
        nn.Conv2d(out_dim, out_dim, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(out_dim),
    )
