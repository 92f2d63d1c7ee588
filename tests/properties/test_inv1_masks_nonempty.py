"""Invariant 1: WAIT is always valid; every head's mask has at least one valid entry, and irrelevant
heads keep the mask they would have if relevant."""

import torch
from hypothesis import given, strategies as st

from esper_core.rl.masks import (
    blueprint_mask,
    compute_action_masks,
    mask_inputs_from_observations,
    op_mask,
    slot_mask,
    style_mask,
)
from esper_core.ops import HEADS, Op
from esper_core.rl.sampling import sample_actions
from support.strategies import head_floors, head_logits, rl_setups


@given(rl_setups())
def test_wait_always_valid_and_every_conditional_mask_nonempty(setup):
    space, lifecycle, observations = setup
    inputs = mask_inputs_from_observations(observations, space, lifecycle)
    n_envs = inputs.n_envs
    ops = op_mask(inputs)
    assert ops[:, Op.WAIT].all()
    assert ops.any(-1).all()
    for op in Op:
        slots = slot_mask(inputs, torch.full((n_envs,), int(op)))
        # Wherever the op can be chosen, the slot head has a choice too.
        assert (slots.any(-1) | ~ops[:, op]).all(), f"{op.name} valid but no slot for it"
    for slot in range(inputs.n_slots):
        at_slot = torch.full((n_envs,), slot)
        assert blueprint_mask(inputs, at_slot).any(-1).all()
        assert style_mask(inputs, at_slot).any(-1).all()


@given(rl_setups(), st.data())
def test_sampled_joint_actions_have_nonempty_masks_for_every_head(setup, data):
    space, lifecycle, observations = setup
    inputs = mask_inputs_from_observations(observations, space, lifecycle)
    logits = data.draw(head_logits(space.head_sizes, inputs.n_envs))
    sampled = sample_actions(logits, inputs, data.draw(head_floors(space.head_sizes)), data.draw(st.booleans()))
    assert set(sampled.masks) == set(HEADS)
    for head, mask in sampled.masks.items():
        assert mask.shape == (inputs.n_envs, space.head_sizes[head])
        assert mask.any(-1).all(), f"head {head} has an empty mask"


@given(rl_setups(), st.data())
def test_irrelevant_heads_keep_the_mask_they_would_have_if_relevant(setup, data):
    space, lifecycle, observations = setup
    inputs = mask_inputs_from_observations(observations, space, lifecycle)
    n_envs = inputs.n_envs
    slots = torch.tensor(data.draw(st.lists(st.integers(0, inputs.n_slots - 1), min_size=n_envs, max_size=n_envs)))
    ops = torch.tensor(data.draw(st.lists(st.sampled_from(list(Op)), min_size=n_envs, max_size=n_envs)))
    actions = torch.zeros(n_envs, len(HEADS), dtype=torch.long)
    actions[:, 0], actions[:, 1] = ops, slots
    as_germinate = actions.clone()
    as_germinate[:, 0] = int(Op.GERMINATE)
    masks, germinate_masks = compute_action_masks(inputs, actions), compute_action_masks(inputs, as_germinate)
    for head in HEADS[2:]:
        assert torch.equal(masks[head], germinate_masks[head]), f"{head} mask depends on the op"
