"""The ``static`` policy: always WAIT. The no-growth control every growth result is compared against.

It goes through the same masks as every other policy, so a run with it is exactly a run of the host alone
(same epochs, same data order, same seeds), with the same telemetry.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from esper_core.rl.masks import canonicalise_actions, mask_inputs_from_observations
from esper_core.ops import HEADS
from esper_core.records import EnvObservation, PolicyContext, PolicyOutput
from esper_core.specs import NoOptions, PolicySpec
from esper_policies.non_learning import NonLearningPolicy


class StaticPolicy(NonLearningPolicy):
    def __init__(self, options: NoOptions, context: PolicyContext) -> None:
        super().__init__(context)

    def act(self, observations: Sequence[EnvObservation], state: Any, deterministic: bool = False) -> PolicyOutput:
        inputs = mask_inputs_from_observations(observations, self._space, self._lifecycle, self._device)
        n_envs = len(observations)
        waits = torch.zeros(n_envs, len(HEADS), dtype=torch.long, device=self._device)
        actions, masks = canonicalise_actions(inputs, waits)
        return PolicyOutput(
            actions=actions,
            log_probs=torch.zeros(n_envs, len(HEADS), device=self._device),
            masks=masks,
            value=self.zero_values(n_envs),
            state=state,
        )

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
