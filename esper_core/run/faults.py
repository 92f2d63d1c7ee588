"""Fault recovery for an env step: a snapshot before the epoch, and a rollback that prunes the suspects.

Why a snapshot of tensors only: the morphology cannot change during an epoch (ops run before it,
``step_epoch`` after it), so the model's and optimiser's state dicts taken after the action fit the model
exactly when a non-finite loss is found at the end of the epoch.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

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


class SharedSnapshot:
    """Copies of a few large tensors taken once, from which many models' snapshots take their views.

    Why: in a fused group every env's host tensors are views of the wide host's (``run.widen``), so one
    copy of each wide tensor holds every env's snapshot of them; the envs' snapshots are views of it
    (no kernel, no memory per env) instead of one copy per env tensor (measured: the per-env copies
    took 9% of a fused round on an H100)."""

    def __init__(self, tensors: Iterable[torch.Tensor]) -> None:
        self._copies: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for tensor in tensors:
            original = tensor.detach()
            copied = original.clone()
            if copied.stride() == original.stride():  # dense tensors keep their layout (channels_last too)
                self._copies[original.untyped_storage().data_ptr()] = (original, copied)

    def copy_of(self, tensor: torch.Tensor) -> torch.Tensor:
        """A copy of ``tensor`` as it was when the shared copies were taken: a view into them when
        ``tensor`` is a view of one of the shared tensors, else a fresh clone."""
        found = self._copies.get(tensor.untyped_storage().data_ptr()) if tensor.numel() else None
        if found is None:
            return tensor.detach().clone()
        original, copied = found
        offset = tensor.storage_offset() - original.storage_offset()
        return copied.as_strided(tensor.size(), tensor.stride(), copied.storage_offset() + offset)


def take_snapshot(model: MorphogeneticModel, shared: SharedSnapshot | None = None) -> dict[str, Any]:
    """Copies of the model's and optimiser's tensors (on their device); views into ``shared`` for the
    tensors it holds (a fused group's wide host)."""
    copy_tensor = shared.copy_of if shared is not None else (lambda t: t.detach().clone())
    return {
        "model": {k: copy_tensor(v) for k, v in model.state_dict().items()},
        "optimizer": _copy_tree(model.optimizer.state_dict(), copy_tensor),
    }


def _copy_tree(value: Any, copy_tensor: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """A copy of a state dict's nesting of dicts, lists and tuples with every tensor copied by
    ``copy_tensor`` (``copy.deepcopy`` spends most of a snapshot's time walking the structure)."""
    if isinstance(value, torch.Tensor):
        return copy_tensor(value)
    if isinstance(value, dict):
        return {k: _copy_tree(v, copy_tensor) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v, copy_tensor) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy_tree(v, copy_tensor) for v in value)
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    return copy.deepcopy(value)


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
