"""``mlp`` and ``mlp_small``: an extra feed-forward sub-block (expansion 4 and 1)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from esper_blueprints.sequence_layers import TRANSFORMER, FeedForward
from esper_core.specs import BlueprintSpec


def feed_forward(expansion: float) -> Callable[[int, int], nn.Module]:
    def build(channels: int, spatial: int) -> nn.Module:
        return FeedForward(channels, expansion)

    return build


SPEC = BlueprintSpec(
    name="mlp",
    description="Extra GELU MLP sub-block, hidden 4 D, output zeroed (~8 D^2 params).",
    factory=feed_forward(4.0),
    topologies=TRANSFORMER,
)

SMALL_SPEC = BlueprintSpec(
    name="mlp_small",
    description="Extra GELU MLP sub-block, hidden D, output zeroed (~2 D^2 params).",
    factory=feed_forward(1.0),
    topologies=TRANSFORMER,
)
