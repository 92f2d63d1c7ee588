"""Invariant 6: log-probs of stored actions under the stored masks are finite (and equal to the ones
recorded at sampling); invalid actions have probability exactly 0."""

import math

import torch
from hypothesis import given, strategies as st

from esper_core.rl.distributions import MaskedCategorical
from esper_core.rl.masks import mask_inputs_from_observations
from esper_core.ops import HEADS
from esper_core.rl.rollout import RolloutBuffer
from esper_core.rl.sampling import evaluate_actions, sample_actions
from support.strategies import (
    action_spaces,
    bool_masks,
    env_batches,
    floors_for,
    generator,
    head_floors,
    head_logits,
    lifecycle_configs,
    logit_tensors,
)


@given(action_spaces(max_slots=3), lifecycle_configs(), st.integers(2, 4), st.integers(1, 3), st.data())
def test_stored_actions_evaluate_to_the_recorded_finite_log_probs(space, lifecycle, n_steps, n_envs, data):
    """A rollout through changing env states: the update sees exactly what sampling saw."""
    floors = data.draw(head_floors(space.head_sizes))
    buffer = RolloutBuffer(n_steps, n_envs, obs_dim=2, head_sizes=space.head_sizes)
    step_logits = []
    for t in range(n_steps):
        observations = data.draw(env_batches(space, lifecycle, min_envs=n_envs, max_envs=n_envs))
        inputs = mask_inputs_from_observations(observations, space, lifecycle)
        logits = data.draw(head_logits(space.head_sizes, n_envs))
        sampled = sample_actions(logits, inputs, floors, False, generator(t))
        buffer.add(
            t,
            obs=torch.zeros(n_envs, 2),
            actions=sampled.actions,
            log_probs=sampled.log_probs,
            masks=sampled.masks,
            values=torch.zeros(n_envs),
            rewards=torch.zeros(n_envs),
            dones=torch.zeros(n_envs, dtype=torch.bool),
        )
        step_logits.append(logits)
    buffer.validate()
    logits = {h: torch.stack([step[h] for step in step_logits]) for h in HEADS}
    log_probs, entropy = evaluate_actions(logits, buffer.actions, buffer.masks, floors)
    assert torch.isfinite(log_probs).all()
    assert torch.allclose(log_probs, buffer.log_probs, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(entropy).all()


@st.composite
def distributions_cases(draw):
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 7)))
    logits = draw(logit_tensors(shape))
    if draw(st.booleans()):
        logits = logits.to(torch.bfloat16)
    return logits, draw(bool_masks(shape)), draw(floors_for(shape[-1]))


@given(distributions_cases(), st.integers(0, 999))
def test_invalid_actions_have_probability_zero_and_are_never_drawn(case, seed):
    logits, mask, floor = case
    dist = MaskedCategorical(logits, mask, floor)
    assert (dist.probs[~mask] == 0).all()
    for action in range(mask.shape[-1]):
        lp = dist.log_prob(torch.full(mask.shape[:-1], action))
        assert (lp[~mask[:, action]] == -math.inf).all()
        assert torch.isfinite(lp[mask[:, action]]).all() or floor == 0.0
    draws = torch.stack([dist.sample(generator(seed + i)) for i in range(16)])
    assert mask.gather(-1, draws.T).all()
    assert torch.isfinite(dist.log_prob(draws)).all()
    assert mask.gather(-1, dist.mode().unsqueeze(-1)).all()
