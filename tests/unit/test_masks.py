"""Masks: one env followed through a seed's life, one wrong-precondition case per op, conditional heads."""

import pytest
import torch

from esper_core.rl.actions import ActionSpace
from esper_core.config import LifecycleConfig
from esper_core.rl.masks import (
    MaskInputs,
    blueprint_mask,
    canonicalise_actions,
    compute_action_masks,
    head_relevance,
    mask_inputs_from_observations,
    mask_inputs_from_tensors,
    op_mask,
    slot_mask,
    style_mask,
)
from esper_core.ops import HEADS, Op
from esper_core.records import DecodedAction, EnvObservation, SlotSummary
from esper_core.stages import SeedStage as S

LIFECYCLE = LifecycleConfig(min_training_epochs=2, min_prune_age=3, max_seeds=2)


def make_space(**overrides) -> ActionSpace:
    values = dict(
        slots=["a", "b", "c"],
        blueprints=["light", "mlp_only"],
        blueprint_topologies={"light": {"cnn"}, "mlp_only": {"mlp"}},
        styles=["add", "gate"],
        tempos=[3, 5],
        alpha_targets=[0.5, 1.0],
        topology="cnn",
    )
    values.update(overrides)
    return ActionSpace.build(**values)


def slot(name, stage, epochs=0, age=0, at_target=True) -> SlotSummary:
    return SlotSummary(name=name, stage=stage, epochs_in_stage=epochs, seed_age=age, alpha_at_target=at_target)


def observation(*slots: SlotSummary) -> EnvObservation:
    return EnvObservation(
        epoch=0, episode_length=10, topology="cnn", train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5,
        val_acc_delta=0.0, val_loss_delta=0.0, best_val_acc=0.5, plateau_epochs=0, host_params=1, seed_params=0,
        param_budget_used=0.0, last_op=Op.WAIT, last_action_ok=True, slots=slots,
    )


def valid_ops(*slots: SlotSummary, space=None, lifecycle=LIFECYCLE) -> set[Op]:
    inputs = mask_inputs_from_observations([observation(*slots)], space or make_space(), lifecycle)
    return {op for op in Op if op_mask(inputs)[0, op]}


def test_one_seed_through_its_whole_life():
    dormant = [slot("b", S.DORMANT), slot("c", S.DORMANT)]
    assert valid_ops(slot("a", S.DORMANT), *dormant) == {Op.WAIT, Op.GERMINATE}
    # Just germinated: training, too young for anything.
    assert valid_ops(slot("a", S.TRAINING, 0, 0), *dormant) == {Op.WAIT}
    assert valid_ops(slot("a", S.TRAINING, 2, 2), *dormant) == {Op.WAIT, Op.ADVANCE}
    assert valid_ops(slot("a", S.TRAINING, 3, 3), *dormant) == {Op.WAIT, Op.ADVANCE, Op.PRUNE}
    # Blending: another seed may start; retarget and prune allowed; advance only once alpha is at target.
    blending = slot("a", S.BLENDING, 1, 4, at_target=False)
    assert valid_ops(blending, *dormant) == {Op.WAIT, Op.GERMINATE, Op.SET_ALPHA_TARGET, Op.PRUNE}
    blended = slot("a", S.BLENDING, 3, 6, at_target=True)
    assert valid_ops(blended, *dormant) == {Op.WAIT, Op.GERMINATE, Op.SET_ALPHA_TARGET, Op.PRUNE, Op.ADVANCE}
    holding = slot("a", S.HOLDING, 0, 7)
    assert valid_ops(holding, *dormant) == {Op.WAIT, Op.GERMINATE, Op.SET_ALPHA_TARGET, Op.PRUNE, Op.FOSSILIZE}
    assert valid_ops(slot("a", S.FOSSILIZED, 0, 8), *dormant) == {Op.WAIT, Op.GERMINATE}
    # Pruned path: the slot stays unusable, and blocks germination elsewhere, until it is DORMANT again.
    for stage in (S.PRUNED, S.EMBARGOED, S.RESETTING):
        assert valid_ops(slot("a", stage, 0, 5), *dormant) == {Op.WAIT}, stage


@pytest.mark.parametrize(
    "slots, op, why",
    [
        ((slot("a", S.TRAINING, 1, 9),), Op.ADVANCE, "fewer than min_training_epochs in TRAINING"),
        ((slot("a", S.BLENDING, 5, 9, at_target=False),), Op.ADVANCE, "alpha not at target"),
        ((slot("a", S.TRAINING, 2, 2),), Op.PRUNE, "younger than min_prune_age"),
        ((slot("a", S.HOLDING, 0, 2),), Op.PRUNE, "younger than min_prune_age"),
        ((slot("a", S.BLENDING, 9, 9),), Op.FOSSILIZE, "not HOLDING"),
        ((slot("a", S.TRAINING, 9, 9),), Op.SET_ALPHA_TARGET, "not BLENDING/HOLDING"),
        ((slot("a", S.FOSSILIZED, 9, 9),), Op.PRUNE, "fossilized seeds are permanent"),
        ((slot("a", S.TRAINING, 9, 9), slot("b", S.DORMANT)), Op.GERMINATE, "a seed is still training"),
        ((slot("a", S.EMBARGOED), slot("b", S.DORMANT)), Op.GERMINATE, "a slot is being cleaned up"),
        ((slot("a", S.HOLDING, 1, 9), slot("b", S.BLENDING, 1, 9), slot("c", S.DORMANT)), Op.GERMINATE, "seed limit"),
        ((slot("a", S.FOSSILIZED), slot("b", S.HOLDING)), Op.GERMINATE, "no DORMANT slot"),
    ],
)
def test_op_is_unsampleable_under_wrong_preconditions(slots, op, why):
    names = ["a", "b", "c"][: len(slots)]
    space = make_space(slots=names)
    assert op not in valid_ops(*slots, space=space), why


def test_germinate_needs_a_slot_whose_topology_some_blueprint_supports():
    space = make_space(blueprints=["mlp_only"], blueprint_topologies={"mlp_only": {"mlp"}})
    assert Op.GERMINATE not in valid_ops(slot("a", S.DORMANT), slot("b", S.DORMANT), slot("c", S.DORMANT), space=space)
    mixed = make_space(slot_topologies=["cnn", "mlp", "cnn"], styles=["add"], style_topologies={"add": {"mlp"}})
    inputs = mask_inputs_from_observations(
        [observation(slot("a", S.DORMANT), slot("b", S.DORMANT), slot("c", S.DORMANT))], mixed, LIFECYCLE
    )
    assert slot_mask(inputs, torch.tensor([int(Op.GERMINATE)])).tolist() == [[False, True, False]]


def test_slot_mask_follows_the_chosen_op():
    obs = observation(slot("a", S.HOLDING, 0, 9), slot("b", S.TRAINING, 5, 5), slot("c", S.BLENDING, 0, 1, False))
    inputs = mask_inputs_from_observations([obs] * 6, make_space(), LIFECYCLE)
    masks = slot_mask(inputs, torch.arange(6))
    assert masks.tolist() == [
        [True, True, True],  # WAIT: slot irrelevant, every entry allowed
        [False, False, False],  # GERMINATE: blocked (b is TRAINING) - never sampled, op mask is False
        [True, False, True],  # SET_ALPHA_TARGET: BLENDING/HOLDING
        [True, True, False],  # PRUNE: old enough (c is 1 epoch old)
        [True, False, False],  # FOSSILIZE: HOLDING
        [False, True, False],  # ADVANCE: b trained long enough; c not at target
    ]


def test_blueprint_mask_excludes_noop_and_unsupported_and_falls_back_to_noop():
    space = make_space(slot_topologies=["cnn", "mlp", "rnn"])
    obs = observation(slot("a", S.DORMANT), slot("b", S.DORMANT), slot("c", S.DORMANT))
    inputs = mask_inputs_from_observations([obs] * 3, space, LIFECYCLE)
    assert blueprint_mask(inputs, torch.tensor([0, 1, 2])).tolist() == [
        [False, True, False],
        [False, False, True],
        [True, False, False],  # nothing fits an "rnn" slot: noop alone keeps the head non-empty
    ]
    assert style_mask(inputs, torch.tensor([0, 1, 2])).all()


def test_compute_action_masks_and_canonicalise():
    space = make_space()
    obs = observation(slot("a", S.DORMANT), slot("b", S.HOLDING, 0, 9), slot("c", S.DORMANT))
    inputs = mask_inputs_from_observations([obs, obs], space, LIFECYCLE)
    germinate = space.encode(
        DecodedAction(op=Op.GERMINATE, slot="c", blueprint="light", style="gate", tempo=5, alpha_target=0.5)
    )
    fossilize = space.encode(DecodedAction(op=Op.FOSSILIZE, slot="b"))
    actions = torch.stack([germinate, fossilize])
    masks = compute_action_masks(inputs, actions)
    assert list(masks) == list(HEADS)
    assert masks["slot"].tolist() == [[True, False, True], [False, True, False]]
    assert masks["blueprint"].tolist() == [[False, True, False]] * 2
    assert masks["tempo"].shape == (2, 2) and masks["tempo"].all()
    # fossilize's irrelevant blueprint entry 0 (noop) is not valid under its mask; canonicalise fixes it.
    fixed, fixed_masks = canonicalise_actions(inputs, actions)
    assert torch.equal(fixed[0], germinate)
    assert fixed[1, :2].tolist() == [int(Op.FOSSILIZE), 1] and fixed[1, 2] == 1
    for i, head in enumerate(HEADS):
        assert fixed_masks[head].gather(1, fixed[:, i : i + 1]).all(), head


def test_head_relevance_is_batched_over_any_shape():
    ops = torch.tensor([[int(Op.WAIT), int(Op.ADVANCE)], [int(Op.GERMINATE), int(Op.PRUNE)]])
    relevance = head_relevance(ops)
    assert relevance.shape == (2, 2, len(HEADS)) and relevance.dtype == torch.bool
    assert relevance[0, 0].tolist() == [True] + [False] * 7
    assert relevance[0, 1].tolist() == [True, True] + [False] * 6


def test_mask_inputs_reject_mismatched_slots_and_shapes():
    space = make_space()
    expected = "env 0 has slots \\('a', 'b'\\); the action space expects \\('a', 'b', 'c'\\)"
    with pytest.raises(ValueError, match=expected):
        mask_inputs_from_observations([observation(slot("a", S.DORMANT), slot("b", S.DORMANT))], space, LIFECYCLE)
    with pytest.raises(ValueError, match="at least one observation"):
        mask_inputs_from_observations([], space, LIFECYCLE)
    zeros = torch.zeros(2, 3, dtype=torch.long)
    inputs = mask_inputs_from_tensors(zeros, zeros, zeros, zeros.bool(), space, LIFECYCLE)
    assert isinstance(inputs, MaskInputs) and inputs.n_envs == 2 and inputs.n_slots == 3
    with pytest.raises(ValueError, match="seed_age must have shape"):
        MaskInputs(
            stage=zeros, epochs_in_stage=zeros, seed_age=zeros[:, :2], alpha_at_target=zeros.bool(),
            blueprint_support=inputs.blueprint_support, style_support=inputs.style_support,
            min_training_epochs=1, min_prune_age=1, max_seeds=1, head_sizes=space.head_sizes,
        )
