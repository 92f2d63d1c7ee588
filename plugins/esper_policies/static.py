"""The ``static`` policy: always WAIT. The no-growth control every growth result is compared against.

It goes through the same masks as every other policy, so a run with it is exactly a run of the host alone
(same epochs, same data order, same seeds), with the same telemetry.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from esper_core.masks import canonicalise_actions, mask_inputs_from_observations
from esper_core.ops import HEADS
from esper_core.records import EnvObservation, PolicyContext, PolicyOutput
from esper_core.specs import NoOptions, PolicySpec


class StaticPolicy:
    learns = False

    def __init__(self, options: NoOptions, context: PolicyContext) -> None:
        self._space = context.space
        self._lifecycle = context.lifecycle
        self._device = torch.device(context.device)

    def initial_state(self, n_envs: int) -> None:
        return None

    def reset_state(self, state: Any, done: torch.Tensor) -> Any:
        return state

    def act(self, observations: Sequence[EnvObservation], state: Any, deterministic: bool = False) -> PolicyOutput:
        inputs = mask_inputs_from_observations(observations, self._space, self._lifecycle, self._device)
        n_envs = len(observations)
        waits = torch.zeros(n_envs, len(HEADS), dtype=torch.long, device=self._device)
        actions, masks = canonicalise_actions(inputs, waits)
        return PolicyOutput(
            actions=actions,
            log_probs=torch.zeros(n_envs, len(HEADS), device=self._device),
            masks=masks,
            value=torch.zeros(n_envs, device=self._device),
            state=state,
        )

    def update(self, rollout: Any) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"the static policy has no state; got keys {sorted(state)}")


SPEC = PolicySpec(
    name="static",
    description="Always WAIT: the host alone, the no-growth control for every comparison.",
    factory=StaticPolicy,
    options_type=NoOptions,
    learns=False,
)
