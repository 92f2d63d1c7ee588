"""``conv_small``: two 3x3 convolutions at half width, a small residual branch."""

from __future__ import annotations

from torch import nn

from esper_blueprints.layers import conv3x3, conv_norm_relu, hidden_width, zero_output_layer
from esper_core.specs import BlueprintSpec


def build(channels: int, spatial: int) -> nn.Module:
    """3x3 conv C -> C/2, GroupNorm, ReLU, 3x3 conv C/2 -> C (zero-initialised): about 9 C^2 params."""
    hidden = hidden_width(channels, 0.5)
    return nn.Sequential(*conv_norm_relu(channels, hidden), zero_output_layer(conv3x3(hidden, channels)))


SPEC = BlueprintSpec(
    name="conv_small",
    description="Two 3x3 convs through C/2 channels with GroupNorm+ReLU (~9 C^2 params); output starts at 0.",
    factory=build,
    topologies=frozenset({"cnn"}),
)
