"""The static policy is the no-growth control: it must WAIT in every state, legally, forever."""

from __future__ import annotations

import pytest
import torch

from esper_core.ops import HEADS, Op
from esper_core.stages import SeedStage
from esper_policies.static import StaticPolicy
from esper_core.specs import NoOptions
from support.policy_builders import context, env, seed_slot
from support.reward_builders import slot


def _observations():
    empty = env()
    busy = env(
        seed_slot("s0", SeedStage.HOLDING, epochs_in_stage=4, seed_age=9),
        seed_slot("s1", SeedStage.TRAINING, epochs_in_stage=3, seed_age=3),
        slot("s2", SeedStage.EMBARGOED),
    )
    return [empty, busy]


def test_static_waits_in_every_state_with_masks_that_allow_it() -> None:
    policy = StaticPolicy(NoOptions(), context(n_envs=2))
    out = policy.act(_observations(), policy.initial_state(2))
    assert out.actions.shape == (2, len(HEADS))
    assert (out.actions[:, 0] == int(Op.WAIT)).all()
    for i, head in enumerate(HEADS):
        chosen = out.masks[head].gather(1, out.actions[:, i : i + 1]).squeeze(1)
        assert chosen.all(), f"head {head} chose a masked entry"
    assert torch.equal(out.value, torch.zeros(2))
    assert not policy.learns and policy.update(None) == {}


def test_static_state_dict_is_empty_and_rejects_foreign_state() -> None:
    policy = StaticPolicy(NoOptions(), context())
    assert policy.state_dict() == {}
    with pytest.raises(ValueError, match="no state"):
        policy.load_state_dict({"generator": 1})
