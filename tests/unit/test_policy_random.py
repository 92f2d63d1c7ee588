"""The ``random`` policy: legal, uniform over valid entries, seeded, resumable."""

from __future__ import annotations

import collections

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations
from esper_core.ops import HEADS, Op
from esper_core.protocols import Policy
from esper_core.specs import NoOptions
from esper_core.stages import SeedStage
from esper_policies.random_policy import SPEC, RandomPolicy
from support.policy_builders import LIFECYCLE, context, env, seed_slot
from support.lifecycle_truth import illegality
from support.strategies import rl_setups


def _policy(seed: int = 0) -> RandomPolicy:
    return SPEC.factory(NoOptions(), context(seed))


def _all_ops_valid() -> list:
    """s0 DORMANT, s1 HOLDING, s2 BLENDING at target, both old enough to prune: every op is valid."""
    holding = seed_slot("s1", SeedStage.HOLDING, alpha=1.0, seed_age=10, epochs_in_stage=2)
    blending = seed_slot("s2", SeedStage.BLENDING, alpha=1.0, alpha_at_target=True, seed_age=10)
    return [env(holding, blending)] * 64


def test_spec_and_protocol() -> None:
    policy = _policy()
    assert isinstance(policy, Policy)
    assert SPEC.name == "random" and not SPEC.learns and policy.learns is False
    assert policy.update(object()) == {}


def test_outputs_have_the_contract_shapes_and_zero_values() -> None:
    policy = _policy()
    observations = _all_ops_valid()[:5]
    out = policy.act(observations, policy.initial_state(5))
    assert out.actions.shape == (5, len(HEADS)) and out.actions.dtype == torch.long
    assert out.log_probs.shape == (5, len(HEADS)) and torch.isfinite(out.log_probs).all()
    assert torch.equal(out.value, torch.zeros(5))
    assert set(out.masks) == set(HEADS)
    inputs = mask_inputs_from_observations(observations, policy.context.space, LIFECYCLE)
    recomputed = compute_action_masks(inputs, out.actions)
    assert all(torch.equal(out.masks[h], recomputed[h]) for h in HEADS)


def test_covers_every_valid_op_slot_and_blueprint_roughly_uniformly() -> None:
    policy = _policy(seed=3)
    decoded = []
    for _ in range(10):
        out = policy.act(_all_ops_valid(), None)
        decoded += policy.context.space.decode_batch(out.actions)
    ops = collections.Counter(a.op for a in decoded)
    assert set(ops) == set(Op)
    assert min(ops.values()) > len(decoded) / 6 / 2  # uniform over 6 ops: ~107 each of 640
    assert {a.slot for a in decoded if a.op is Op.PRUNE} == {"s1", "s2"}
    assert {a.slot for a in decoded if a.op is Op.GERMINATE} == {"s0"}
    assert {a.blueprint for a in decoded if a.op is Op.GERMINATE} == {"conv_light", "conv_small", "conv_heavy"}
    assert {a.tempo for a in decoded if a.op is Op.GERMINATE} == {3, 5, 8}


@settings(max_examples=25)
@given(setup=rl_setups(), seed=st.integers(0, 2**31 - 1))
def test_only_legal_actions_on_random_states(setup, seed) -> None:
    action_space, lifecycle, observations = setup
    ctx = attrs.evolve(context(seed, len(observations), action_space), lifecycle=lifecycle)
    policy = RandomPolicy(NoOptions(), ctx)
    out = policy.act(observations, None)
    for obs, action in zip(observations, action_space.decode_batch(out.actions)):
        assert illegality(action, obs, action_space, lifecycle) is None
    chosen = torch.stack([out.masks[h].gather(1, out.actions[:, [i]]).squeeze(1) for i, h in enumerate(HEADS)], -1)
    assert chosen.all()


def test_same_seed_same_actions_other_seed_other_actions() -> None:
    a, b, c = _policy(7), _policy(7), _policy(8)
    observations = _all_ops_valid()
    xa, xb, xc = (p.act(observations, None).actions for p in (a, b, c))
    assert torch.equal(xa, xb)
    assert not torch.equal(xa, xc)


def test_state_dict_round_trip_resumes_the_same_draws() -> None:
    observations = _all_ops_valid()
    original = _policy(11)
    original.act(observations, None)
    saved = original.state_dict()
    expected = original.act(observations, None).actions

    resumed = _policy(999)
    resumed.load_state_dict(saved)
    assert torch.equal(resumed.act(observations, None).actions, expected)


def test_load_state_dict_names_the_missing_key() -> None:
    with pytest.raises(KeyError, match="generator"):
        _policy().load_state_dict({})
