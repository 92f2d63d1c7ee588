"""``layer_norm``: the cheapest transformer seed (the transformer's ``norm``)."""

from __future__ import annotations

from torch import nn

from esper_blueprints.sequence_layers import TRANSFORMER, ZeroAffineLayerNorm
from esper_core.specs import BlueprintSpec


def build(channels: int, spatial: int) -> nn.Module:
    return ZeroAffineLayerNorm(channels)


SPEC = BlueprintSpec(
    name="layer_norm",
    description="LayerNorm with a learned scale and shift that start at 0 (2 D params).",
    factory=build,
    topologies=TRANSFORMER,
)
