"""The runner's guard: every sampled action must be legal under the masks it was sampled with *and*
under the masks of the env's actual state. An illegal action is a policy bug; it raises, it is never
turned into WAIT (the stored log-prob would then belong to an action that did not run)."""

from __future__ import annotations

from typing import Sequence

import torch

from esper_core.rl.actions import ActionSpace
from esper_core.config.sections import LifecycleConfig
from esper_core.run.env import IllegalActionError
from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations
from esper_core.ops import HEADS
from esper_core.records import EnvObservation, PolicyOutput


def check_legal(
    output: PolicyOutput, observations: Sequence[EnvObservation], space: ActionSpace, lifecycle: LifecycleConfig
) -> torch.Tensor:
    """Bool [E, H]: each head's choice under the stored masks (all True, or this raises). One host sync."""
    actions = output.actions
    n_envs = len(observations)
    if tuple(actions.shape) != (n_envs, len(HEADS)):
        raise IllegalActionError(f"policy returned actions of shape {tuple(actions.shape)}; expected {(n_envs, len(HEADS))}")
    missing = [h for h in HEADS if h not in output.masks]
    if missing:
        raise IllegalActionError(f"policy output lacks masks for head(s) {missing}")
    sizes = torch.tensor([space.head_sizes[h] for h in HEADS], device=actions.device)
    in_range = (actions >= 0) & (actions < sizes)
    safe = torch.where(in_range, actions, torch.zeros_like(actions))
    truth = compute_action_masks(mask_inputs_from_observations(observations, space, lifecycle, actions.device), safe)
    stored_ok, true_ok = [], []
    for i, head in enumerate(HEADS):
        index = safe[:, i : i + 1]
        stored_ok.append(output.masks[head].to(actions.device).gather(1, index).squeeze(1))
        true_ok.append(truth[head].gather(1, index).squeeze(1))
    stored = torch.stack(stored_ok, 1) & in_range
    legal = stored & torch.stack(true_ok, 1)
    if not bool(legal.all()):
        env, head = (~legal).nonzero().tolist()[0]
        count = int((~legal).sum())
        if not bool(in_range[env, head]):
            why = f"index {int(actions[env, head])} outside [0, {space.head_sizes[HEADS[head]]})"
        elif not bool(stored[env, head]):
            why = "an entry its stored mask forbids"
        else:
            why = "an entry the env's actual state forbids (its masks do not describe the env)"
        raise IllegalActionError(
            f"env {env}: action row {actions[env].tolist()} chooses {why} for head {HEADS[head]!r} "
            f"({count} illegal choice(s) in all); this is a policy bug, never converted to WAIT"
        )
    return stored
