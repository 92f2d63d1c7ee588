"""What every policy that does not learn shares: no recurrent state, zero values, a no-op update."""

from __future__ import annotations

from typing import Any

import torch

from esper_core.records import PolicyContext


class NonLearningPolicy:
    """Base for controllers whose decisions come from rules or chance; subclasses implement ``act``."""

    learns = False

    def __init__(self, context: PolicyContext) -> None:
        self.context = context
        self._space = context.space
        self._lifecycle = context.lifecycle
        self._device = torch.device(context.device)

    def initial_state(self, n_envs: int) -> Any:
        return None

    def reset_state(self, state: Any, done: torch.Tensor) -> Any:
        return state

    def update(self, rollout: Any) -> dict[str, float]:
        return {}

    def zero_values(self, n_envs: int) -> torch.Tensor:
        """The critic's answer for a policy that has none."""
        return torch.zeros(n_envs, device=self._device)
