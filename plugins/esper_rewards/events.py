"""Lifecycle events of one step, read from the states before and after it (and the reported transitions).

Stage comparison catches what a single transition list could hide: an instant prune can pass
PRUNED -> EMBARGOED within one step, so the slot is already EMBARGOED in the next observation.
"""

from __future__ import annotations

import attrs

from esper_core.records import EnvObservation, RewardInputs, SlotSummary
from esper_core.stages import LIVE_SEED_STAGES, SeedStage

#: Stages in which a slot holds no seed that could contribute (the seed is gone or never existed).
EMPTY_STAGES: frozenset[SeedStage] = frozenset({SeedStage.DORMANT, SeedStage.EMBARGOED, SeedStage.RESETTING})

#: Stages a pruned seed passes through on its way back to DORMANT.
CLEANUP_STAGES: frozenset[SeedStage] = frozenset(
    {SeedStage.PRUNED, SeedStage.EMBARGOED, SeedStage.RESETTING, SeedStage.DORMANT}
)


def slots_by_name(obs: EnvObservation) -> dict[str, SlotSummary]:
    return {s.name: s for s in obs.slots}


@attrs.frozen
class StepEvents:
    """Slot names that were germinated, pruned or fossilized by this step."""

    germinated: tuple[str, ...]
    pruned: tuple[str, ...]
    fossilized: tuple[str, ...]


def _stage(slots: dict[str, SlotSummary], name: str) -> SeedStage:
    slot = slots.get(name)
    return SeedStage.DORMANT if slot is None else slot.stage


def step_events(inputs: RewardInputs) -> StepEvents:
    before, after = slots_by_name(inputs.before), slots_by_name(inputs.after)
    names = list(dict.fromkeys([*before, *after]))
    germinated: list[str] = []
    pruned: list[str] = []
    fossilized: list[str] = []
    reported = {(t.slot, t.to_stage) for t in inputs.transitions}
    for name in names:
        was, now = _stage(before, name), _stage(after, name)
        if (was in EMPTY_STAGES and now in LIVE_SEED_STAGES) or (name, SeedStage.GERMINATED) in reported:
            germinated.append(name)
        if (was in LIVE_SEED_STAGES and now in CLEANUP_STAGES) or (name, SeedStage.PRUNED) in reported:
            pruned.append(name)
        if (was is not SeedStage.FOSSILIZED and now is SeedStage.FOSSILIZED) or (
            name,
            SeedStage.FOSSILIZED,
        ) in reported:
            fossilized.append(name)
    return StepEvents(tuple(germinated), tuple(pruned), tuple(fossilized))


def alpha_shock(inputs: RewardInputs) -> float:
    """Sum over slots of the squared alpha change this step.

    Squaring is what makes speed matter: fading alpha 1 -> 0 at once costs 1, over k steps k * (1/k)^2 = 1/k.
    """
    before, after = slots_by_name(inputs.before), slots_by_name(inputs.after)
    total = 0.0
    for name in dict.fromkeys([*before, *after]):
        a0 = before[name].alpha if name in before else 0.0
        a1 = after[name].alpha if name in after else 0.0
        total += (a1 - a0) ** 2
    return total
