"""Layers of the built-in CNN hosts."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def downsampled_size(size: int, stride: int) -> int:
    """Spatial size after a 3x3/pad-1 (or 1x1/pad-0) convolution with ``stride``: ceil(size / stride)."""
    return (size - 1) // stride + 1


class BasicBlock(nn.Module):
    """The two-conv residual block of CIFAR ResNets, with a 1x1 projection when the shape changes.

    The residual branch's last BatchNorm starts with scale 0, so every block starts as (a projection of)
    the identity: deep and shallow variants begin equally well-conditioned.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        nn.init.zeros_(self.bn2.weight)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def init_host_weights(module: nn.Module) -> None:
    """He init for convolutions (fan-out, ReLU) and a small linear head; BatchNorm keeps its own init
    (unit scale, except the residual branches' last scale, which ``BasicBlock`` zeroes)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
