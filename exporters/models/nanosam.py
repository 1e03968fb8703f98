"""NanoSAM's image encoder: a ResNet-18 backbone with an upsampling/projection neck (torch).

Key names equal NanoSAM's ``TimmImageEncoder("resnet18")`` state dict (timm
``features_only`` ResNet keys under ``backbone.``, then ``up_1`` and ``proj``), with the
module-level ``pos_embedding`` first, so the encoder part of a NanoSAM training
checkpoint loads strictly. Only the last backbone level (``layer4``, stride 32) is used.

    image 1x3x1024x1024 -> layer4 1x512x32x32 -> up_1 1x256x64x64 -> proj + pos_embedding
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv+BN, identity (or 1x1 conv+BN) shortcut, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + shortcut)


class ResNetFeatures(nn.Module):
    """ResNet stem and stages (keys ``conv1``, ``bn1``, ``layer1..4``); returns ``layer4``."""

    def __init__(self, depths: tuple[int, ...] = (2, 2, 2, 2), widths: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        in_ch = widths[0]
        for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            first = BasicBlock(in_ch, width, 1 if i == 0 else 2)
            stages.append(nn.Sequential(first, *(BasicBlock(width, width, 1) for _ in range(depth - 1))))
            in_ch = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(x, 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class NanoSamEncoder(nn.Module):
    """``1x3x1024x1024`` normalized image -> ``1x256x64x64`` embeddings (no final norm).

    The neck upsamples ``32x32 -> 64x64`` with three 3x3 convs and a stride-2 transposed
    conv (exact-erf GELU after each), projects with a 3x3 and a 1x1 conv, and adds a
    learned positional embedding.
    """

    def __init__(self, feature_dim: int = 256, feature_size: int = 64):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, feature_dim, feature_size, feature_size))
        self.backbone = ResNetFeatures()
        c = self.backbone.out_channels
        self.up_1 = nn.Sequential(
            nn.Conv2d(c, feature_dim, 3, padding=1), nn.GELU(),
            nn.Conv2d(feature_dim, feature_dim, 3, padding=1), nn.GELU(),
            nn.Conv2d(feature_dim, feature_dim, 3, padding=1), nn.GELU(),
            nn.ConvTranspose2d(feature_dim, feature_dim, 3, stride=2, padding=1, output_padding=1), nn.GELU(),
        )
        self.proj = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim, 3, padding=1), nn.GELU(),
            nn.Conv2d(feature_dim, feature_dim, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(self.up_1(self.backbone(image))) + self.pos_embedding
