"""GrowthOptimizer: the host's SGD plus one SGD per live seed, reshaped as the morphology changes.

- Germination adds a separate optimiser for the seed (``seed_lr``): the host optimiser, its param groups and
  its momentum buffers are never touched by a seed that may still be pruned.
- Prune drops the seed's optimiser and its state (the memory goes with it).
- Fossilization moves the seed's parameters into the host optimiser as a new param group with the host's
  current hyperparameters. The seed's momentum buffers are **carried** into the host optimiser state: SGD
  momentum is a running sum of gradients, independent of the learning rate, so it stays meaningful and the
  fossilized seed keeps its training velocity instead of restarting from rest.

The state dict records the group layout (fossil groups in fossilization order, live seed slots) and loading
checks it, so a checkpoint only loads into an optimiser rebuilt for the same morphology.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from esper_core.config.sections import TrainingConfig

HOST_GROUP = "host"
_GROUP_KEY = "esper_group"


def _fossil_group(slot: str) -> str:
    return f"fossil:{slot}"


class GrowthOptimizer:
    """Host SGD + per-seed SGDs. ``zero_grad`` / ``step`` / ``state_dict`` / ``load_state_dict`` cover all."""

    def __init__(self, host_params: Iterable[nn.Parameter], training: TrainingConfig, nesterov: bool = False) -> None:
        self.training = training
        self.nesterov = nesterov
        params = list(host_params)
        if not params:
            raise ValueError("GrowthOptimizer needs at least one host parameter")
        self._host = torch.optim.SGD(
            [{"params": params, _GROUP_KEY: HOST_GROUP}],
            lr=training.lr,
            momentum=training.momentum,
            weight_decay=training.weight_decay,
            nesterov=nesterov and training.momentum > 0,
        )
        self._seeds: dict[str, torch.optim.SGD | _EmptySGD] = {}

    # ----------------------------------------------------------------------------------------- access
    @property
    def host(self) -> torch.optim.SGD:
        return self._host

    @property
    def seed_slots(self) -> tuple[str, ...]:
        return tuple(self._seeds)

    def seed_optimizer(self, slot: str) -> "torch.optim.SGD | _EmptySGD":
        try:
            return self._seeds[slot]
        except KeyError:
            raise KeyError(f"no seed optimiser for slot {slot!r}; seeds with one: {list(self._seeds)}") from None

    @property
    def fossil_slots(self) -> tuple[str, ...]:
        """Slots whose fossilized seeds joined the host optimiser, in the order they joined."""
        return tuple(g[_GROUP_KEY].split(":", 1)[1] for g in self._host.param_groups[1:])

    # -------------------------------------------------------------------------------------- morphology
    def add_seed(self, slot: str, params: Iterable[nn.Parameter]) -> None:
        if slot in self._seeds:
            raise ValueError(f"slot {slot!r} already has a seed optimiser")
        params = list(params)
        if not params:  # torch optimisers refuse an empty parameter list
            self._seeds[slot] = _EmptySGD(slot)
            return
        self._seeds[slot] = torch.optim.SGD(
            [{"params": params, _GROUP_KEY: f"seed:{slot}"}],
            lr=self.training.seed_lr,
            momentum=self.training.momentum,
            weight_decay=self.training.weight_decay,
            nesterov=self.nesterov and self.training.momentum > 0,
        )

    def drop_seed(self, slot: str) -> None:
        """Forget a pruned seed's optimiser and state (no-op when it has none)."""
        optimizer = self._seeds.pop(slot, None)
        if optimizer is not None:
            optimizer.state.clear()

    def fossilize_seed(self, slot: str) -> None:
        """Move a seed's parameters (and momentum) into the host optimiser as a new param group."""
        optimizer = self._seeds.pop(slot, None)
        if optimizer is None:
            raise KeyError(f"no seed optimiser for slot {slot!r} to fossilize; seeds with one: {list(self._seeds)}")
        params = [p for g in optimizer.param_groups for p in g["params"]]
        if not params:
            return
        host_defaults = {k: v for k, v in self._host.param_groups[0].items() if k not in ("params", _GROUP_KEY)}
        self._host.add_param_group({**host_defaults, "params": params, _GROUP_KEY: _fossil_group(slot)})
        for p in params:
            if p in optimizer.state:
                self._host.state[p] = optimizer.state.pop(p)

    # ----------------------------------------------------------------------------------------- stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        self._host.zero_grad(set_to_none=set_to_none)
        for optimizer in self._seeds.values():
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self._host.step()
        for optimizer in self._seeds.values():
            optimizer.step()

    def own_groups(self) -> list[tuple[dict[str, Any], dict[Any, Any]]]:
        """Every param group but the base host's (fossilized seeds, then live seeds), each with the state
        dict that holds its momentum: what a fused group steps for its envs at once (``run.own_step``),
        since its wide optimiser steps the base hosts."""
        groups: list[tuple[dict[str, Any], dict[Any, Any]]] = [(g, self._host.state) for g in self._host.param_groups[1:]]
        groups += [(g, optimizer.state) for optimizer in self._seeds.values() for g in optimizer.param_groups]
        return groups

    # ------------------------------------------------------------------------------------ checkpointing
    def layout(self) -> dict[str, Any]:
        return {"fossil_groups": list(self.fossil_slots), "seeds": sorted(self._seeds)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout(),
            "host": self._host.state_dict(),
            "seeds": {slot: optimizer.state_dict() for slot, optimizer in self._seeds.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("layout") != self.layout():
            raise ValueError(
                f"optimiser checkpoint layout {state.get('layout')} does not match this model's {self.layout()}; "
                "restore the model's morphology (MorphogeneticModel.load_morphology) before loading the optimiser"
            )
        self._host.load_state_dict(state["host"])
        for slot, optimizer in self._seeds.items():
            optimizer.load_state_dict(state["seeds"][slot])


class _EmptySGD:
    """Stand-in optimiser for a seed without parameters (torch optimisers refuse an empty parameter list)."""

    def __init__(self, slot: str) -> None:
        self.param_groups: list[dict[str, Any]] = [{"params": [], _GROUP_KEY: f"seed:{slot}"}]
        self.state: dict[Any, Any] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        return None

    def step(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
