"""Fault recovery for an env step: a snapshot before the epoch, and a rollback that prunes the suspects.

Why a snapshot of tensors only: the morphology cannot change during an epoch (ops run before it,
``step_epoch`` after it), so the model's and optimiser's state dicts taken after the action fit the model
exactly when a non-finite loss is found at the end of the epoch.
"""

from __future__ import annotations

import copy
from typing import Any

import attrs
import torch

from esper_core.growth.model import MorphogeneticModel
from esper_core.records import StageTransition
from esper_core.stages import LIVE_SEED_STAGES


@attrs.frozen
class Recovery:
    reason: str
    pruned: tuple[str, ...]
    transitions: tuple[StageTransition, ...]


def take_snapshot(model: MorphogeneticModel) -> dict[str, Any]:
    """Copies of the model's and optimiser's tensors (on their device)."""
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(model.optimizer.state_dict()),
    }


def live_seeds(model: MorphogeneticModel) -> list[str]:
    return [name for name, slot in model.slots.items() if slot.stage in LIVE_SEED_STAGES and slot.has_seed]


def recover(model: MorphogeneticModel, snapshot: dict[str, Any], what: str) -> Recovery:
    """Restore ``snapshot`` and prune the live seeds with non-finite parameters (all live seeds when none
    has any: the seed's output, not its weights, may have overflowed). ``what`` names the failed loss."""
    live = live_seeds(model)
    broken = [name for name in live if not all(bool(torch.isfinite(p).all()) for p in model.slots[name].seed_parameters())]
    suspects = broken or live
    model.load_state_dict(snapshot["model"])
    model.optimizer.load_state_dict(snapshot["optimizer"])
    model.optimizer.zero_grad(set_to_none=True)
    transitions: list[StageTransition] = []
    for name in suspects:
        transitions.extend(model.force_prune(name, "non-finite loss"))
    reason = f"non-finite {what} loss; rolled back to the state before the epoch"
    reason += f", pruned {', '.join(suspects)}" if suspects else " (no live seed to blame)"
    return Recovery(reason, tuple(suspects), tuple(transitions))



class HostFaultError(RuntimeError):
    """An env's host keeps producing non-finite losses even after every rollback: the run cannot go on."""


def check_fault_streak(streak: int, episode_length: int, host: str, env: int, training: Any) -> None:
    """Stop a run whose host cannot train: ``streak`` consecutive env steps (across episodes, whose hosts
    are fresh) each ended in a non-finite loss. Why stop: every such step is rolled back, so the run would
    otherwise "complete" having learned nothing, its summary counting faults nobody reads."""
    limit = max(3, episode_length)
    if streak < limit:
        return
    raise HostFaultError(
        f"env {env}: the host {host!r} hit a non-finite loss on {streak} env steps in a row (each rolled back, "
        f"seeds pruned): it cannot train under this configuration. Lower training.lr (now {training.lr}) or "
        f"training.seed_lr (now {training.seed_lr}), check the data, or the host plugin {host!r} itself."
    )
