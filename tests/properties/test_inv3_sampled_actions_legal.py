"""Invariant 3: every sampled joint action is legal for the env state it was sampled in (checked
against the lifecycle rules), so the env executes it as is and never converts it."""

import torch
from hypothesis import given, strategies as st

from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations, op_mask
from esper_core.ops import HEADS, RELEVANT_HEADS, Op
from esper_core.rl.sampling import sample_actions
from support.lifecycle_truth import illegality, legal_ops_in_env
from support.strategies import generator, head_floors, head_logits, rl_setups

REPEATS = 8  # samples per env state per example


@given(rl_setups(max_envs=4), st.data())
def test_every_sampled_joint_action_is_legal(setup, data):
    space, lifecycle, observations = setup
    observations = [obs for obs in observations for _ in range(REPEATS)]
    inputs = mask_inputs_from_observations(observations, space, lifecycle)
    logits = data.draw(head_logits(space.head_sizes, inputs.n_envs))
    floors = data.draw(head_floors(space.head_sizes))
    deterministic, seed = data.draw(st.booleans()), data.draw(st.integers(0, 999))
    sampled = sample_actions(logits, inputs, floors, deterministic, generator(seed))
    for obs, row in zip(observations, sampled.actions):
        decoded = space.decode(row)
        assert illegality(decoded, obs, space, lifecycle) is None, (illegality(decoded, obs, space, lifecycle), decoded)
        # Executed as is: encoding the decoded action restores every relevant head.
        relevant = [i for i, h in enumerate(HEADS) if h in RELEVANT_HEADS[decoded.op]]
        assert torch.equal(space.encode(decoded)[relevant], row[relevant])


@given(rl_setups(max_envs=4), st.data())
def test_op_mask_offers_exactly_the_ops_the_lifecycle_allows(setup, data):
    space, lifecycle, observations = setup
    ops = op_mask(mask_inputs_from_observations(observations, space, lifecycle))
    for env, obs in enumerate(observations):
        offered = {op for op in Op if ops[env, op]}
        assert offered == legal_ops_in_env(obs, space, lifecycle), [s.stage.name for s in obs.slots]


@given(rl_setups(max_envs=4), st.data())
def test_returned_masks_are_the_masks_of_the_sampled_action(setup, data):
    space, lifecycle, observations = setup
    inputs = mask_inputs_from_observations(observations, space, lifecycle)
    logits = data.draw(head_logits(space.head_sizes, inputs.n_envs))
    sampled = sample_actions(logits, inputs, {}, False, generator(data.draw(st.integers(0, 999))))
    recomputed = compute_action_masks(inputs, sampled.actions)
    for head in HEADS:
        assert torch.equal(recomputed[head], sampled.masks[head]), head
        chosen = sampled.masks[head].gather(1, sampled.actions[:, HEADS.index(head), None])
        assert chosen.all(), f"{head}: sampled an entry outside its own mask"
