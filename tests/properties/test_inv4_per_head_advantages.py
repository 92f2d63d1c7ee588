"""Invariant 4: a head's advantage is exactly 0 where the op makes it irrelevant and equals the shared
advantage where relevant (WAIT: only `op`; ADVANCE/FOSSILIZE: only `op` and `slot`).

The expected table (lifecycle_truth.EXPECTED_RELEVANT) is spelled out independently of
esper_core.ops.RELEVANT_HEADS, so a change to either is caught."""

import torch
from hypothesis import given, strategies as st

from esper_core.rl.advantages import per_head_advantages
from esper_core.rl.masks import head_relevance
from esper_core.ops import HEADS, Op
from support.lifecycle_truth import EXPECTED_RELEVANT
from support.strategies import generator


@st.composite
def advantages_and_ops(draw):
    shape = draw(st.sampled_from([(7,), (3, 4), (2, 3, 5)]))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-6, 1.0, 1e6]))
    advantages = torch.randn(*shape, generator=generator(seed)) * scale
    ops = torch.randint(0, len(Op), shape, generator=generator(seed + 1))
    return advantages, ops


@given(advantages_and_ops())
def test_per_head_advantage_is_shared_where_relevant_and_exactly_zero_elsewhere(case):
    advantages, ops = case
    per_head = per_head_advantages(advantages, ops)
    assert per_head.shape == (*advantages.shape, len(HEADS))
    for index in torch.cartesian_prod(*[torch.arange(n) for n in advantages.shape]).reshape(-1, advantages.dim()):
        index = tuple(index.tolist())
        op = Op(int(ops[index]))
        for h, head in enumerate(HEADS):
            value = per_head[index + (h,)]
            if head in EXPECTED_RELEVANT[op]:
                assert value == advantages[index], (op.name, head)
            else:
                assert value == 0.0 and not torch.signbit(value), (op.name, head, float(value))


def test_relevance_table_matches_the_design():
    relevance = head_relevance(torch.arange(len(Op)))
    for op in Op:
        assert {h for h, flag in zip(HEADS, relevance[op].tolist()) if flag} == EXPECTED_RELEVANT[op], op.name


@given(advantages_and_ops())
def test_non_finite_advantages_never_leak_into_irrelevant_heads(case):
    advantages, ops = case
    advantages = advantages.clone()
    advantages.view(-1)[0] = float("nan")
    advantages.view(-1)[-1] = float("inf")
    per_head = per_head_advantages(advantages, ops)
    irrelevant = ~head_relevance(ops)
    assert (per_head[irrelevant] == 0.0).all()
