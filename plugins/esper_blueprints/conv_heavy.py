"""``conv_heavy``: three full-width 3x3 convolutions, the largest built-in seed."""

from __future__ import annotations

from torch import nn

from esper_blueprints.layers import conv3x3, conv_norm_relu, zero_output_layer
from esper_core.specs import BlueprintSpec


def build(channels: int, spatial: int) -> nn.Module:
    """(3x3 conv C -> C, GroupNorm, ReLU) x 2, then 3x3 conv C -> C (zero-initialised): about 27 C^2 params."""
    return nn.Sequential(
        *conv_norm_relu(channels, channels),
        *conv_norm_relu(channels, channels),
        zero_output_layer(conv3x3(channels, channels)),
    )


SPEC = BlueprintSpec(
    name="conv_heavy",
    description="Three full-width 3x3 convs with GroupNorm+ReLU (~27 C^2 params); output starts at 0.",
    factory=build,
    topologies=frozenset({"cnn"}),
)
