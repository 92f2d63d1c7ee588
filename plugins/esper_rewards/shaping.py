"""Potential-based shaping on lifecycle progress.

F = gamma * Phi(s') - Phi(s) with Phi the sum of per-slot stage potentials. Shaping of this form leaves the
optimal policy unchanged, and it telescopes: over a germinate -> prune -> DORMANT cycle the sum is
(gamma - 1) * sum of the interior potentials <= 0, provided every potential is >= 0 and the stages a pruned
seed passes through (PRUNED, EMBARGOED, RESETTING) sit at the DORMANT value 0. That is why those three are
fixed here rather than options.
"""

from __future__ import annotations

from typing import Mapping

from esper_core.records import EnvObservation
from esper_core.stages import SeedStage

#: Stages whose potential is pinned to the DORMANT value so shaping can never pay for a prune cycle.
ZERO_POTENTIAL_STAGES: frozenset[SeedStage] = frozenset(
    {SeedStage.DORMANT, SeedStage.PRUNED, SeedStage.EMBARGOED, SeedStage.RESETTING}
)


def potential(obs: EnvObservation, stage_potentials: Mapping[SeedStage, float]) -> float:
    return sum(stage_potentials.get(s.stage, 0.0) for s in obs.slots if s.stage not in ZERO_POTENTIAL_STAGES)


def shaping_term(
    before: EnvObservation,
    after: EnvObservation,
    stage_potentials: Mapping[SeedStage, float],
    gamma: float,
    done: bool,
) -> float:
    """The terminal state has potential 0 (standard convention), so shaping only moves reward in time."""
    phi_after = 0.0 if done else potential(after, stage_potentials)
    return gamma * phi_after - potential(before, stage_potentials)
