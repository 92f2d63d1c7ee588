"""``bottleneck``: the ResNet bottleneck shape (1x1 down, 3x3, 1x1 up) as a seed."""

from __future__ import annotations

from torch import nn

from esper_blueprints.layers import conv1x1, conv3x3, group_norm, hidden_width, zero_output_layer
from esper_core.specs import BlueprintSpec


def build(channels: int, spatial: int) -> nn.Module:
    """1x1 C -> C/4, 3x3 C/4 -> C/4, 1x1 C/4 -> C (zero-initialised), GroupNorm+ReLU between: about 1.1 C^2."""
    hidden = hidden_width(channels, 0.25)
    return nn.Sequential(
        conv1x1(channels, hidden),
        group_norm(hidden),
        nn.ReLU(inplace=True),
        conv3x3(hidden, hidden),
        group_norm(hidden),
        nn.ReLU(inplace=True),
        zero_output_layer(conv1x1(hidden, channels, bias=True)),
    )


SPEC = BlueprintSpec(
    name="bottleneck",
    description="1x1 down to C/4, 3x3, 1x1 back up to C with GroupNorm+ReLU (~1.1 C^2 params); output starts at 0.",
    factory=build,
    topologies=frozenset({"cnn"}),
)
