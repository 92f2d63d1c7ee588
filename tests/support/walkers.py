"""A non-learning policy for run-loop tests: samples legal actions from its masks with chosen op logits,
from a generator of its own, so a run walks seeds through the lifecycle (germinate, advance, fossilize,
prune) far more often than a young ppo_v2 does."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from esper_core.api import EnvObservation, PolicyOutput
from esper_core.rl.masks import mask_inputs_from_observations
from esper_core.rl.sampling import sample_actions


class MaskWalker:
    """``op_logits`` (in ``Op`` order) bias the op head; every other head samples uniformly from its mask.
    A test may set ``op_logits`` after the run is built (e.g. to drawn values)."""

    learns = False
    #: Default op logits; a subclass names its own.
    OP_LOGITS: Sequence[float] | None = None

    def __init__(self, options: Any, context: Any) -> None:
        self.space, self.lifecycle, self.device = context.space, context.lifecycle, torch.device(context.device)
        self.generator = torch.Generator().manual_seed(int(context.seed))
        size = self.space.head_sizes["op"]
        self.op_logits = torch.tensor(self.OP_LOGITS) if self.OP_LOGITS is not None else torch.zeros(size)

    def initial_state(self, n_envs: int) -> None:
        return None

    def reset_state(self, state: Any, done: torch.Tensor) -> None:
        return None

    def act(self, observations: list[EnvObservation], state: Any, deterministic: bool = False) -> PolicyOutput:
        n = len(observations)
        logits = {head: torch.zeros(n, size) for head, size in self.space.head_sizes.items()}
        logits["op"] = self.op_logits.expand(n, -1).clone()
        inputs = mask_inputs_from_observations(observations, self.space, self.lifecycle, self.device)
        sampled = sample_actions(logits, inputs, floors={}, deterministic=False, generator=self.generator)
        return PolicyOutput(
            actions=sampled.actions, log_probs=sampled.log_probs, masks=sampled.masks, value=torch.zeros(n), state=None
        )

    def update(self, rollout: Any) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
