"""How much accuracy the seeds are credited with in one state.

The counterfactual contribution (acc_with - acc_without) can overstate a seed: once the host has learned to
depend on it, removing it hurts even if it added nothing overall (docs/design/growth-and-rewards.md,
"Counterfactual contribution"). So a positive contribution is credited only up to the total
validation-accuracy improvement since the seed was germinated.
"""

from __future__ import annotations

from esper_core.records import EnvObservation
from esper_core.stages import SeedStage

from esper_rewards.ledger import EpisodeLedger
from esper_rewards.rent import RENTED_STAGES


def credit(contribution: float, val_acc: float, val_acc_at_germination: float) -> float:
    """Harm is charged in full; help is capped by the improvement the run actually saw."""
    if contribution <= 0.0:
        return contribution
    return min(contribution, max(0.0, val_acc - val_acc_at_germination))


def attributed_accuracy(obs: EnvObservation, ledger: EpisodeLedger) -> float:
    """Sum of credited contributions: live seeds as measured, fossilized seeds as banked when they fossilized.

    Used as a potential: the reward pays its change, so over any germinate -> prune cycle the payments
    telescope to zero (the slot starts and ends with nothing attributed), whatever the measurements were.
    """
    total = 0.0
    for slot in obs.slots:
        if slot.stage is SeedStage.FOSSILIZED:
            total += ledger.banked.get(slot.name, 0.0)
        elif slot.stage in RENTED_STAGES and slot.last_contribution is not None:
            baseline = ledger.val_acc_at_germination(slot.name, default=obs.val_acc)
            total += credit(slot.last_contribution, obs.val_acc, baseline)
    return total
