"""``norm``: the cheapest seed, a learned per-channel affine of the group-normalised features."""

from __future__ import annotations

from torch import nn

from esper_blueprints.layers import group_norm, zero_output_layer
from esper_core.specs import BlueprintSpec


def build(channels: int, spatial: int) -> nn.Module:
    """GroupNorm whose affine scale and shift start at 0 (2 C params).

    Blended additively it lets the controller re-centre and re-scale a stage's features almost for free.
    The affine is the last (and only) layer, so zeroing it keeps gradients flowing.
    """
    return zero_output_layer(group_norm(channels))


SPEC = BlueprintSpec(
    name="norm",
    description="GroupNorm with a learned per-channel scale and shift that start at 0 (2 C params).",
    factory=build,
    topologies=frozenset({"cnn"}),
)
