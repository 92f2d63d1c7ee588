"""``causal_attention``: extra causal attention heads on the stream (the transformer's ``attention``).

Named apart from the CNN ``attention`` blueprint because a blueprint name is unique across topologies.
"""

from __future__ import annotations

from torch import nn

from esper_blueprints.sequence_layers import TRANSFORMER, ExtraHeads
from esper_core.specs import BlueprintSpec

#: Two new heads of width D/4 each (at least 2): enough to add a new attention pattern, half a block's cost.
HEADS = 2


def build(channels: int, spatial: int) -> nn.Module:
    return ExtraHeads(channels, HEADS, max(2, channels // 4))


SPEC = BlueprintSpec(
    name="causal_attention",
    description="Two extra causal attention heads of width D/4, output projection zeroed (~2 D^2 params).",
    factory=build,
    topologies=TRANSFORMER,
)
