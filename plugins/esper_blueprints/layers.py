"""Building blocks shared by the built-in blueprints.

Seeds normalise with GroupNorm, not BatchNorm: its output for a sample does not depend on the rest of
the batch, so a counterfactual pass (the batch duplicated, the seed switched off for one half) and small
batches behave, and there are no running statistics to keep in step with the host's train/eval mode.
"""

from __future__ import annotations

from torch import nn


def hidden_width(channels: int, ratio: float) -> int:
    """``channels * ratio`` rounded, at least 2: narrow slots still get a working seed, and a hidden
    GroupNorm always normalises more than one value (even on a 1x1 feature map)."""
    return max(2, round(channels * ratio))


def group_norm(channels: int, max_groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with the most groups (up to ``max_groups``) that divide ``channels`` into groups of at
    least two channels (one group when ``channels`` is 1)."""
    groups = max((g for g in range(1, max_groups + 1) if channels % g == 0 and channels // g >= 2), default=1)
    return nn.GroupNorm(groups, channels)


def conv3x3(in_channels: int, out_channels: int, dilation: int = 1, groups: int = 1) -> nn.Conv2d:
    """A shape-preserving 3x3 convolution (padding follows the dilation)."""
    return nn.Conv2d(
        in_channels, out_channels, 3, padding=dilation, dilation=dilation, groups=groups, bias=False
    )


def conv1x1(in_channels: int, out_channels: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=bias)


def zero_output_layer(layer: nn.Module) -> nn.Module:
    """Zero a seed's *last* layer so a fresh seed outputs exactly 0 (germination preserves function).

    Only the last layer: its weight gradient (incoming gradient x the randomly initialised hidden
    activations) is non-zero, so the first optimiser step makes the output non-zero and from then on
    the earlier layers learn too. Zeroing every layer would leave all gradients at 0 forever.
    """
    for parameter in layer.parameters():
        nn.init.zeros_(parameter)
    return layer


def conv_norm_relu(in_channels: int, out_channels: int, dilation: int = 1) -> list[nn.Module]:
    return [conv3x3(in_channels, out_channels, dilation), group_norm(out_channels), nn.ReLU(inplace=True)]
