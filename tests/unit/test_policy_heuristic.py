"""The ``heuristic`` policy: the rules it follows, and that it never emits an illegal action."""

from __future__ import annotations

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations
from esper_core.ops import HEADS, Op
from esper_core.protocols import Policy
from esper_core.records import DecodedAction
from esper_core.stages import SeedStage
from esper_core.validators import IncompatibleSettings
from esper_policies.heuristic import SPEC, HeuristicOptions, HeuristicPolicy
from support.policy_builders import BLUEPRINTS, LIFECYCLE, context, env, seed_slot, space
from support.lifecycle_truth import illegality
from support.strategies import rl_setups


def _policy(options: HeuristicOptions | None = None, **ctx) -> HeuristicPolicy:
    return SPEC.factory(options or HeuristicOptions(), context(**ctx))


def _act(policy: HeuristicPolicy, observation, state=None) -> tuple[DecodedAction, object]:
    out = policy.act([observation], state)
    return policy.context.space.decode(out.actions[0]), out.state


def _run(policy: HeuristicPolicy, accuracies: list[float], *slots) -> list[DecodedAction]:
    """Feed one env a sequence of epochs with the given validation accuracies (slots fixed)."""
    state, actions = policy.initial_state(1), []
    for epoch, acc in enumerate(accuracies):
        action, state = _act(policy, env(*slots, epoch=epoch, val_acc=acc), state)
        actions.append(action)
    return actions


def test_spec_and_protocol() -> None:
    policy = _policy()
    assert isinstance(policy, Policy)
    assert SPEC.name == "heuristic" and not SPEC.learns and policy.learns is False
    assert policy.update(object()) == {}


def test_germinates_on_a_plateau_into_the_first_dormant_slot() -> None:
    actions = _run(_policy(), [0.30, 0.40, 0.50, 0.50, 0.501, 0.50])
    assert [a.op for a in actions[:5]] == [Op.WAIT] * 5  # still improving, then 3 flat epochs needed
    assert actions[5] == DecodedAction(
        op=Op.GERMINATE, slot="s0", blueprint="conv_light", style="linear_add", tempo=5, alpha_target=1.0
    )  # no preference given: the first blueprint of the action space has the first turn


def test_keeps_waiting_while_accuracy_improves() -> None:
    actions = _run(_policy(), [0.1 + 0.01 * t for t in range(10)])
    assert {a.op for a in actions} == {Op.WAIT}


def test_plateau_germination_uses_the_next_dormant_slot_and_waits_for_a_new_plateau() -> None:
    fossil = seed_slot("s0", SeedStage.FOSSILIZED, alpha=1.0)
    policy = _policy()
    state, ops = policy.initial_state(1), []
    for epoch in range(8):
        action, state = _act(policy, env(fossil, epoch=epoch, val_acc=0.5), state)
        ops.append((action.op, action.slot))
    assert ops[3] == (Op.GERMINATE, "s1")
    assert ops[4:6] == [(Op.WAIT, None)] * 2 and ops[6] == (Op.GERMINATE, "s1")  # 3 more flat epochs


def test_no_germination_while_another_seed_is_training() -> None:
    training = seed_slot("s1", SeedStage.TRAINING, epochs_in_stage=0, seed_age=1)
    actions = _run(_policy(), [0.5] * 6, training)
    assert {a.op for a in actions} == {Op.WAIT}


def test_blueprint_falls_back_along_the_preference_list_then_to_the_first_valid() -> None:
    preferred = HeuristicOptions(blueprint_preference=("conv_small", "conv_light", "conv_heavy"))
    no_small = _policy(preferred, action_space=space(blueprints=("conv_heavy", "conv_light")))
    assert _run(no_small, [0.5] * 4)[-1].blueprint == "conv_light"
    unknown = _policy(preferred, action_space=space(blueprints=("attention", "norm"), styles=("gated",)))
    action = _run(unknown, [0.5] * 4)[-1]
    assert (action.blueprint, action.style) == ("attention", "gated")


def _germinated_blueprints(policy: HeuristicPolicy, episodes: int) -> list[str]:
    """One plateau germination per episode (fresh policy state each time, as at a round boundary)."""
    names = []
    for _ in range(episodes):
        action = _run(policy, [0.5] * 4)[-1]
        assert action.op is Op.GERMINATE
        names.append(action.blueprint)
    return names


def test_without_a_preference_every_blueprint_takes_its_turn_a_third_party_one_included() -> None:
    blueprints = ("conv_light", "my_dilated", "conv_small")  # my_dilated: a plugin's blueprint no default names
    policy = _policy(action_space=space(blueprints=blueprints))
    assert _germinated_blueprints(policy, 7) == [*blueprints, *blueprints, "conv_light"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(BLUEPRINTS), min_size=0, max_size=12), st.integers(min_value=1, max_value=12))
def test_turns_are_balanced_and_carried_by_the_state_dict(already: list[str], more: int) -> None:
    """However the counts stand, every germination picks a least germinated blueprint, so the counts never
    drift apart by more than they started; a policy loaded from the state dict picks exactly the same."""
    first = _policy()
    first.load_state_dict({"germinations": {name: already.count(name) for name in set(already)}})
    second = _policy()
    second.load_state_dict(first.state_dict())
    counts = {name: already.count(name) for name in BLUEPRINTS}
    for _ in range(more):
        chosen = _germinated_blueprints(first, 1)[0]
        assert counts[chosen] == min(counts.values())
        counts[chosen] += 1
    assert _germinated_blueprints(second, more)[-1] == chosen
    assert first.state_dict() == second.state_dict() == {"germinations": {k: v for k, v in counts.items() if v}}


@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        (seed_slot("s1", SeedStage.TRAINING, epochs_in_stage=2, seed_age=2), DecodedAction(op=Op.ADVANCE, slot="s1")),
        (seed_slot("s1", SeedStage.TRAINING, epochs_in_stage=1, seed_age=1), DecodedAction(op=Op.WAIT)),
        (
            seed_slot("s1", SeedStage.BLENDING, alpha=1.0, alpha_at_target=True, seed_age=6),
            DecodedAction(op=Op.ADVANCE, slot="s1"),
        ),
        (
            seed_slot("s1", SeedStage.BLENDING, alpha=0.4, alpha_at_target=False, seed_age=6),
            DecodedAction(op=Op.WAIT),
        ),
    ],
)
def test_advances_exactly_when_the_gates_allow(seed, expected) -> None:
    action, _ = _act(_policy(), env(seed))
    assert action == expected


def test_fossilizes_a_helpful_seed() -> None:
    helpful = seed_slot("s1", SeedStage.HOLDING, alpha=1.0, seed_age=8, last_contribution=0.03)
    action, _ = _act(_policy(), env(helpful))
    assert action == DecodedAction(op=Op.FOSSILIZE, slot="s1")


def test_holds_a_seed_that_neither_helps_nor_hurts_enough_then_prunes_it_when_stale() -> None:
    young = seed_slot("s1", SeedStage.HOLDING, alpha=1.0, seed_age=8, epochs_in_stage=2, last_contribution=0.004)
    stale = attrs.evolve(young, epochs_in_stage=6)
    assert _act(_policy(), env(young))[0] == DecodedAction(op=Op.WAIT)
    assert _act(_policy(), env(stale))[0].op is Op.PRUNE


def test_prunes_a_harmful_seed_gradually_once_old_enough() -> None:
    harmful = seed_slot("s2", SeedStage.BLENDING, alpha=0.6, alpha_at_target=False, seed_age=5, last_contribution=-0.02)
    action, _ = _act(_policy(), env(harmful))
    assert action == DecodedAction(op=Op.PRUNE, slot="s2", alpha_speed="medium", alpha_curve="linear")
    too_young = attrs.evolve(harmful, seed_age=4)
    assert _act(_policy(), env(too_young))[0] == DecodedAction(op=Op.WAIT)


def test_fossilizing_comes_before_pruning_and_advancing() -> None:
    helpful = seed_slot("s0", SeedStage.HOLDING, alpha=1.0, seed_age=9, last_contribution=0.05)
    harmful = seed_slot("s1", SeedStage.HOLDING, alpha=1.0, seed_age=9, last_contribution=-0.05)
    ready = seed_slot("s2", SeedStage.BLENDING, alpha=1.0, alpha_at_target=True, seed_age=9)
    policy = _policy()
    assert _act(policy, env(helpful, harmful, ready))[0].op is Op.FOSSILIZE
    assert _act(policy, env(harmful, ready))[0].op is Op.PRUNE
    assert _act(policy, env(ready))[0].op is Op.ADVANCE


def test_output_masks_are_those_the_actions_are_legal_under_and_log_probs_are_zero() -> None:
    policy = _policy()
    observations = [
        env(seed_slot("s1", SeedStage.HOLDING, alpha=1.0, seed_age=8, last_contribution=0.03)),
        env(seed_slot("s2", SeedStage.TRAINING, epochs_in_stage=3, seed_age=3)),
        env(),
    ]
    out = policy.act(observations, None)
    inputs = mask_inputs_from_observations(observations, policy.context.space, LIFECYCLE)
    recomputed = compute_action_masks(inputs, out.actions)
    assert all(torch.equal(out.masks[h], recomputed[h]) for h in HEADS)
    chosen = torch.stack([out.masks[h].gather(1, out.actions[:, [i]]).squeeze(1) for i, h in enumerate(HEADS)], -1)
    assert chosen.all()
    assert torch.equal(out.log_probs, torch.zeros(3, len(HEADS)))
    assert torch.equal(out.value, torch.zeros(3))


@settings(max_examples=30)
@given(setup=rl_setups(), plateau=st.booleans())
def test_never_emits_an_illegal_action(setup, plateau) -> None:
    action_space, lifecycle, observations = setup
    ctx = attrs.evolve(context(0, len(observations), action_space), lifecycle=lifecycle)
    policy = HeuristicPolicy(HeuristicOptions(prune_min_age=0, plateau_epochs=1), ctx)
    state = policy.initial_state(len(observations))
    if plateau:  # a previous epoch at the same accuracy makes every env plateau now
        earlier = [attrs.evolve(o, epoch=o.epoch - 1) for o in observations]
        state = policy.act(earlier, state).state
    out = policy.act(observations, state)
    for obs, action in zip(observations, action_space.decode_batch(out.actions)):
        assert illegality(action, obs, action_space, lifecycle) is None


def test_deterministic_and_state_dict_round_trip() -> None:
    accs = [0.5] * 6
    first, second = _policy(), _policy()
    assert first.state_dict() == {"germinations": {}}
    second.load_state_dict(first.state_dict())
    assert _run(first, accs) == _run(second, accs)
    second.load_state_dict({})  # a checkpoint from before the counts existed
    with pytest.raises(ValueError, match="keeps only 'germinations'"):
        second.load_state_dict({"weights": 1})


def test_reset_state_forgets_the_plateau_of_finished_envs() -> None:
    policy = _policy()
    state = policy.initial_state(2)
    for epoch in range(3):
        state = policy.act([env(epoch=epoch), env(epoch=epoch)], state).state
    state = policy.reset_state(state, torch.tensor([True, False]))
    out = policy.act([env(epoch=3), env(epoch=3)], state)
    ops = [Op(int(op)) for op in out.actions[:, 0]]
    assert ops == [Op.WAIT, Op.GERMINATE]


@pytest.mark.parametrize(
    "bad",
    [
        {"prune_max_contribution": 0.02},
        {"prune_max_contribution": 0.001, "fossilize_min_contribution": 0.0},
        {"plateau_epochs": 0},
        {"tempo": 0},
        {"blueprint_preference": "conv_small"},
        {"style_preference": [1]},
    ],
)
def test_bad_options_are_rejected(bad) -> None:
    with pytest.raises((ValueError, TypeError)):
        HeuristicOptions(**bad)


def test_options_must_fit_the_action_space() -> None:
    with pytest.raises(IncompatibleSettings, match=r"policy.options.tempo=4 .*, or add it to actions.tempos"):
        _policy(HeuristicOptions(tempo=4))
    with pytest.raises(ValueError, match="prune_speed"):
        _policy(HeuristicOptions(prune_speed="glacial"))
