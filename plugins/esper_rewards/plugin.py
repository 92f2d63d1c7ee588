"""Registers the built-in rewards."""

from esper_core.hookspecs import hookimpl
from esper_core.specs import RewardSpec
from esper_rewards.contribution import SPEC as CONTRIBUTION
from esper_rewards.growth import SPEC as GROWTH
from esper_rewards.loss_delta import SPEC as LOSS_DELTA
from esper_rewards.sparse import SPEC as SPARSE


@hookimpl
def esper_rewards() -> list[RewardSpec]:
    return [CONTRIBUTION, LOSS_DELTA, SPARSE, GROWTH]
