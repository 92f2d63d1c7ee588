"""The ``random`` policy: uniform over the valid entries of each head, op first, then the heads it needs.

A baseline any learner must beat, and a driver for exercising the lifecycle. It samples through the same
masked, conditional sampler as the learning policy (zero logits = uniform over each head's valid entries),
so every emitted joint action is legal by construction.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from esper_core.rl.masks import mask_inputs_from_observations
from esper_core.records import EnvObservation, PolicyContext, PolicyOutput
from esper_core.rl.sampling import sample_actions
from esper_core.specs import NoOptions, PolicySpec
from esper_policies.non_learning import NonLearningPolicy


class RandomPolicy(NonLearningPolicy):
    """Seeded from ``context.seed``; the generator state is its whole ``state_dict`` (exact resume).

    ``deterministic`` is ignored: a random baseline's "mode" would be WAIT forever, which is a different
    baseline; evaluate it as it was run.
    """

    def __init__(self, options: NoOptions, context: PolicyContext) -> None:
        super().__init__(context)
        self._generator = torch.Generator(device=self._device)
        self._generator.manual_seed(int(context.seed))

    def act(self, observations: Sequence[EnvObservation], state: Any, deterministic: bool = False) -> PolicyOutput:
        inputs = mask_inputs_from_observations(observations, self._space, self._lifecycle, self._device)
        n_envs = len(observations)
        logits = {
            head: torch.zeros(n_envs, size, device=self._device) for head, size in self._space.head_sizes.items()
        }
        sampled = sample_actions(logits, inputs, floors={}, deterministic=False, generator=self._generator)
        return PolicyOutput(
            actions=sampled.actions,
            log_probs=sampled.log_probs,
            masks=sampled.masks,
            value=self.zero_values(n_envs),
            state=state,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" not in state:
            raise KeyError(f"random policy state needs key 'generator'; got keys {sorted(state)}")
        self._generator.set_state(state["generator"])



SPEC = PolicySpec(
    name="random",
    description="Uniform over the valid entries of each head (op first); a baseline that never learns.",
    factory=RandomPolicy,
    options_type=NoOptions,
    learns=False,
)
