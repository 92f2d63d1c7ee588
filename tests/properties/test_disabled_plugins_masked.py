"""A blueprint or blend style the run disabled (it broke its contract) is never offered again, and the
masks stay a pure function of observation and action space: invariant 1 still holds, sampled actions never
pick a disabled entry, and with nothing disabled the masks are exactly what they were before."""

from __future__ import annotations

import attrs
import torch
from hypothesis import given
from hypothesis import strategies as st

from esper_core.ops import HEADS, Op
from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations, op_mask, slot_op_legality
from esper_core.rl.sampling import sample_actions
from support.strategies import head_floors, head_logits, rl_setups


@st.composite
def setups_with_disabled(draw: st.DrawFn):
    space, lifecycle, observations = draw(rl_setups())
    disabled = []
    for obs in observations:
        blueprints = tuple(draw(st.lists(st.sampled_from(space.blueprints[1:]), unique=True))) if len(space.blueprints) > 1 else ()
        styles = tuple(draw(st.lists(st.sampled_from(space.styles), unique=True)))
        disabled.append((blueprints, styles))
    marked = [
        attrs.evolve(obs, disabled_blueprints=b, disabled_styles=s) for obs, (b, s) in zip(observations, disabled)
    ]
    return space, lifecycle, observations, marked, disabled


@given(setups_with_disabled(), st.data())
def test_disabled_entries_are_never_valid_and_sampled_actions_avoid_them(setup, data):
    space, lifecycle, _, marked, disabled = setup
    inputs = mask_inputs_from_observations(marked, space, lifecycle)
    assert op_mask(inputs)[:, Op.WAIT].all()  # invariant 1
    for env, (blueprints, styles) in enumerate(disabled):
        for name in blueprints:
            assert not inputs.blueprint_support[env, :, space.blueprints.index(name)].any()
        for name in styles:
            assert not inputs.style_support[env, :, space.styles.index(name)].any()
    logits = data.draw(head_logits(space.head_sizes, inputs.n_envs))
    sampled = sample_actions(logits, inputs, data.draw(head_floors(space.head_sizes)), data.draw(st.booleans()))
    for head, mask in sampled.masks.items():
        assert mask.any(-1).all(), f"head {head} has an empty mask"
    for env, row in enumerate(sampled.actions.tolist()):
        if Op(row[0]) is Op.GERMINATE:
            blueprint, style = space.blueprints[row[HEADS.index("blueprint")]], space.styles[row[HEADS.index("style")]]
            assert blueprint not in disabled[env][0] and style not in disabled[env][1]
    recomputed = compute_action_masks(mask_inputs_from_observations(marked, space, lifecycle), sampled.actions)
    for head in HEADS:
        assert torch.equal(recomputed[head], sampled.masks[head])  # the legality guard agrees


@given(setups_with_disabled())
def test_germination_is_closed_where_every_blueprint_or_style_is_disabled(setup):
    space, lifecycle, _, marked, disabled = setup
    legality = slot_op_legality(mask_inputs_from_observations(marked, space, lifecycle))
    for env, (blueprints, styles) in enumerate(disabled):
        if set(blueprints) == set(space.blueprints[1:]) or set(styles) == set(space.styles):
            assert not legality[env, :, Op.GERMINATE].any()


@given(rl_setups())
def test_nothing_disabled_leaves_the_masks_unchanged(setup):
    space, lifecycle, observations = setup
    plain = mask_inputs_from_observations(observations, space, lifecycle)
    explicit = [attrs.evolve(obs, disabled_blueprints=(), disabled_styles=()) for obs in observations]
    again = mask_inputs_from_observations(explicit, space, lifecycle)
    assert torch.equal(plain.blueprint_support, again.blueprint_support)
    assert torch.equal(plain.style_support, again.style_support)
