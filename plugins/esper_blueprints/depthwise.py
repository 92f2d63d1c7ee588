"""``depthwise``: a depthwise-separable convolution, spatial mixing per channel then a 1x1 channel mix."""

from __future__ import annotations

from torch import nn

from esper_blueprints.layers import conv1x1, conv3x3, group_norm, zero_output_layer
from esper_core.specs import BlueprintSpec


def build(channels: int, spatial: int) -> nn.Module:
    """3x3 depthwise conv, GroupNorm, ReLU, 1x1 conv C -> C (zero-initialised): about C^2 + 12 C params."""
    return nn.Sequential(
        conv3x3(channels, channels, groups=channels),
        group_norm(channels),
        nn.ReLU(inplace=True),
        zero_output_layer(conv1x1(channels, channels, bias=True)),
    )


SPEC = BlueprintSpec(
    name="depthwise",
    description="Depthwise-separable conv: 3x3 per channel, GroupNorm+ReLU, 1x1 mix (~C^2 params); output starts at 0.",
    factory=build,
    topologies=frozenset({"cnn"}),
)
