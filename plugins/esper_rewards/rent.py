"""Parameter rent: what the seeds cost, as a share of the original host.

Rent must grow with seed size (docs/design/growth-and-rewards.md, "Rent grows with seed size"), otherwise a
large seed costs the same as a tiny one and the agent has no reason to prefer small, effective blueprints.
"""

from __future__ import annotations

from esper_core.records import EnvObservation
from esper_core.stages import LIVE_SEED_STAGES, SeedStage

#: Stages in which a slot still holds a seed module that is not (yet) part of the host.
RENTED_STAGES: frozenset[SeedStage] = LIVE_SEED_STAGES | {SeedStage.PRUNED}


def base_host_params(obs: EnvObservation) -> int:
    """Host parameters without fossilized seeds (``host_params`` counts them as host capacity)."""
    fossilized = sum(s.seed_params for s in obs.slots if s.stage is SeedStage.FOSSILIZED)
    return max(1, obs.host_params - fossilized)


def seed_param_share(obs: EnvObservation, fossilized_factor: float) -> float:
    """Parameters the seeds add, relative to the original host.

    Live and fading (PRUNED) seeds count fully; fossilized ones count ``fossilized_factor`` times, so that
    fossilizing an unhelpful seed is never a way to stop paying for it.
    """
    rented = sum(s.seed_params for s in obs.slots if s.stage in RENTED_STAGES)
    fossilized = sum(s.seed_params for s in obs.slots if s.stage is SeedStage.FOSSILIZED)
    return (rented + fossilized_factor * fossilized) / base_host_params(obs)
