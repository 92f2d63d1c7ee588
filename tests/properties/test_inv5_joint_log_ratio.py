"""Invariant 5: the joint log-ratio is the sum of the relevant heads' log-ratios, irrelevant heads add
exactly 0 (whatever their log-probs), and the joint ratio is clipped as a whole."""

import math

import torch
from hypothesis import given, strategies as st

from esper_core.rl.advantages import clipped_surrogate, joint_log_ratio
from esper_core.ops import HEADS, Op
from support.strategies import generator
from support.lifecycle_truth import EXPECTED_RELEVANT


@st.composite
def log_prob_pairs(draw):
    n = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**31 - 1))
    old = -torch.rand(n, len(HEADS), generator=generator(seed)) * 5
    new = old + torch.randn(n, len(HEADS), generator=generator(seed + 1)) * draw(st.sampled_from([1e-3, 0.1, 2.0]))
    ops = torch.randint(0, len(Op), (n,), generator=generator(seed + 2))
    return new, old, ops


def _relevance(ops):
    return torch.tensor([[h in EXPECTED_RELEVANT[Op(int(op))] for h in HEADS] for op in ops])


@given(log_prob_pairs())
def test_joint_log_ratio_is_the_sum_over_relevant_heads(case):
    new, old, ops = case
    joint = joint_log_ratio(new, old, ops)
    relevant = _relevance(ops)
    for i in range(len(ops)):
        expected = math.fsum((new[i, h] - old[i, h]).item() for h in range(len(HEADS)) if relevant[i, h])
        assert abs(joint[i].item() - expected) <= 1e-5 * (1 + abs(expected))


@given(log_prob_pairs(), st.sampled_from([float("-inf"), float("inf"), float("nan"), 1e30, -1e30]))
def test_irrelevant_heads_contribute_exactly_zero(case, garbage):
    new, old, ops = case
    irrelevant = ~_relevance(ops)
    spoiled_new, spoiled_old = new.clone(), old.clone()
    spoiled_new[irrelevant] = garbage
    spoiled_old[irrelevant] = -garbage if garbage == garbage else garbage
    assert torch.equal(joint_log_ratio(spoiled_new, spoiled_old, ops), joint_log_ratio(new, old, ops))
    # ... and no gradient reaches an irrelevant head's log-prob.
    new_leaf = spoiled_new.clone().requires_grad_(True)
    joint_log_ratio(new_leaf, spoiled_old, ops).sum().backward()
    assert (new_leaf.grad[irrelevant] == 0).all()
    assert (new_leaf.grad[~irrelevant] == 1).all()


@given(
    st.integers(1, 8),
    st.floats(0.05, 0.3),
    st.floats(0.0, 0.99),
    st.booleans(),
    st.floats(0.1, 10.0),
    st.booleans(),
)
def test_joint_ratio_is_clipped_as_a_whole(n_heads_moved, clip, step, up, advantage, positive):
    """Every moved head's own ratio stays inside the clip range; the objective must still follow
    PPO's formula applied to the *joint* ratio (capped, with no gradient, once the joint ratio is out of
    range on the side the advantage favours; unclipped and pessimistic on the other side)."""
    per_head = math.log1p(clip * step) if up else math.log1p(-clip * step)
    new = torch.zeros(1, len(HEADS))
    new[0, :n_heads_moved] = per_head
    new.requires_grad_(True)
    ops = torch.tensor([int(Op.GERMINATE)])
    relevant_moved = sum(1 for h in HEADS[:n_heads_moved] if h in EXPECTED_RELEVANT[Op.GERMINATE])
    joint_ratio = math.exp(per_head * relevant_moved)
    adv = advantage if positive else -advantage
    objective = clipped_surrogate(joint_log_ratio(new, torch.zeros(1, len(HEADS)), ops), torch.tensor([adv]), clip)
    clipped_ratio = min(max(joint_ratio, 1 - clip), 1 + clip)
    expected = min(joint_ratio * adv, clipped_ratio * adv)
    assert abs(objective.item() - expected) <= 1e-4 * abs(expected) + 1e-6
    objective.sum().backward()
    capped = (adv > 0 and joint_ratio > 1 + clip) or (adv < 0 and joint_ratio < 1 - clip)
    assert bool((new.grad == 0).all()) == capped
