"""Registers the built-in policies."""

from esper_core.hookspecs import hookimpl
from esper_core.specs import PolicySpec
from esper_policies.heuristic import SPEC as HEURISTIC
from esper_policies.ppo_v2 import SPEC as PPO_V2
from esper_policies.random_policy import SPEC as RANDOM
from esper_policies.scripted import SPEC as SCRIPTED
from esper_policies.static import SPEC as STATIC


@hookimpl
def esper_policies() -> list[PolicySpec]:
    return [PPO_V2, HEURISTIC, RANDOM, STATIC, SCRIPTED]
