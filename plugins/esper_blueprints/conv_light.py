"""``conv_light``: the cheapest convolutional seed, a narrow 3x3 feature extractor."""

from __future__ import annotations

from torch import nn

from esper_blueprints.layers import conv1x1, conv_norm_relu, hidden_width, zero_output_layer
from esper_core.specs import BlueprintSpec


def build(channels: int, spatial: int) -> nn.Module:
    """3x3 conv C -> C/4, GroupNorm, ReLU, 1x1 conv C/4 -> C (zero-initialised): about 2.5 C^2 params."""
    hidden = hidden_width(channels, 0.25)
    return nn.Sequential(*conv_norm_relu(channels, hidden), zero_output_layer(conv1x1(hidden, channels, bias=True)))


SPEC = BlueprintSpec(
    name="conv_light",
    description="3x3 conv to C/4, GroupNorm, ReLU, 1x1 back to C (~2.5 C^2 params); output starts at 0.",
    factory=build,
    topologies=frozenset({"cnn"}),
)
