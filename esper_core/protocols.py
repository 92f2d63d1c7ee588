"""The contracts every plugin kind fulfils. Structural (typing.Protocol): no base class to inherit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from esper_core.records import EnvObservation, PolicyOutput, RewardInputs, SlotPoint, TaskData


@runtime_checkable
class Task(Protocol):
    """A data source. ``available`` lets ``task.name = "auto"`` pick it without downloading anything."""

    def available(self, data_dir: Path) -> bool: ...

    def load(self, data_dir: Path, device: torch.device, seed: int) -> TaskData: ...


@runtime_checkable
class Host(Protocol):
    """A network with named slot points. Its forward passes features through ``self.slots[name](x)``
    at each point; the host fills ``slots`` with ``nn.Identity`` and the core swaps in ``SeedSlot``s."""

    topology: str
    slots: nn.ModuleDict

    def slot_points(self) -> tuple[SlotPoint, ...]: ...

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Blueprint(Protocol):
    """A seed design (``esper_core.specs.BlueprintSpec`` satisfies this)."""

    name: str

    def supports(self, topology: str) -> bool: ...

    def build(self, channels: int, spatial: int) -> nn.Module: ...

    def param_count(self, channels: int, spatial: int) -> int: ...


@runtime_checkable
class BlendStyle(Protocol):
    """An ``nn.Module`` combining host features ``h`` and seed output ``s`` with ``alpha`` (0-dim device
    tensor, or [B] for a per-sample override). At alpha 0 the result must equal ``h``."""

    def __call__(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Reward(Protocol):
    """Scores one step. One instance per env; ``reset`` at each episode start."""

    def reset(self) -> None: ...

    def __call__(self, inputs: RewardInputs) -> tuple[float, dict[str, float]]: ...


@runtime_checkable
class Policy(Protocol):
    """A controller for a batch of envs. Non-learning policies return zero values and ignore ``update``."""

    learns: bool

    def initial_state(self, n_envs: int) -> Any: ...

    def reset_state(self, state: Any, done: torch.Tensor) -> Any: ...

    def act(self, observations: Sequence[EnvObservation], state: Any, deterministic: bool = False) -> PolicyOutput: ...

    def update(self, rollout: Any) -> dict[str, float]:
        """Learn from one round's ``esper_core.rl.rollout.RolloutBuffer`` as collected (rewards, dones,
        stored masks and actions; no returns): the policy validates it and computes its own returns."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class Observer(Protocol):
    """Receives a run's events (``docs/events.md``) as JSON-able dicts, each its own deep copy. It learns
    where the run directory is, and whether rounds are being redone, from ``run_start``. An exception is
    reported once and never stops the run; ``close`` is called once at the end (flush, close files)."""

    def on_event(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...
