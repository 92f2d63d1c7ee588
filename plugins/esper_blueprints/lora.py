"""``lora`` and ``lora_large``: low-rank residual updates of the stream (rank 8 and 32)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from esper_blueprints.sequence_layers import TRANSFORMER, LowRankAdapter
from esper_core.specs import BlueprintSpec


def low_rank(rank: int) -> Callable[[int, int], nn.Module]:
    """A factory for adapters of ``rank`` (capped at the slot's width)."""

    def build(channels: int, spatial: int) -> nn.Module:
        return LowRankAdapter(channels, rank)

    return build


SPEC = BlueprintSpec(
    name="lora",
    description="Low-rank residual update (LayerNorm, D->8->D, up-projection zeroed; ~16 D params).",
    factory=low_rank(8),
    topologies=TRANSFORMER,
)

LARGE_SPEC = BlueprintSpec(
    name="lora_large",
    description="Low-rank residual update of rank 32 (LayerNorm, D->32->D, up-projection zeroed; ~64 D params).",
    factory=low_rank(32),
    topologies=TRANSFORMER,
)
