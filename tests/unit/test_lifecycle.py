"""The transition table and the per-slot / env-wide gates (pure functions, no model)."""

from __future__ import annotations

import pytest

from esper_core.config import LifecycleConfig
from esper_core.growth.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    LifecycleError,
    check_transition,
    germination_allowed,
    germination_refusal,
    legal_ops_for_slot,
    op_refusal,
)
from esper_core.ops import Op
from esper_core.records import SlotSummary
from esper_core.stages import BLOCKS_GERMINATION, SeedStage as S

LC = LifecycleConfig(min_training_epochs=2, min_prune_age=3, embargo_epochs=2, resetting_epochs=1, max_seeds=2)


def slot(stage: S, name: str = "a", **fields) -> SlotSummary:
    return SlotSummary(name=name, stage=stage, **fields)


def test_table_covers_every_stage_and_matches_the_architecture_diagram() -> None:
    assert set(TRANSITIONS) == set(S)
    main_line = [S.DORMANT, S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING, S.FOSSILIZED]
    for a, b in zip(main_line, main_line[1:]):
        assert b in TRANSITIONS[a]
    for stage in (S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING):
        assert S.PRUNED in TRANSITIONS[stage]
    assert TRANSITIONS[S.PRUNED] == {S.EMBARGOED}
    assert TRANSITIONS[S.EMBARGOED] == {S.RESETTING}
    assert TRANSITIONS[S.RESETTING] == {S.DORMANT}
    assert TRANSITIONS[S.HOLDING] == {S.FOSSILIZED, S.PRUNED, S.BLENDING}  # retarget goes back to BLENDING
    assert TRANSITIONS[S.FOSSILIZED] == frozenset()


def test_check_transition_accepts_exactly_the_table() -> None:
    for a in S:
        for b in S:
            if b in TRANSITIONS[a]:
                check_transition("x", a, b)
            else:
                with pytest.raises(IllegalTransition):
                    check_transition("x", a, b)


def test_illegal_transition_names_slot_and_stages() -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition("late", S.FOSSILIZED, S.PRUNED)
    message = str(info.value)
    assert "'late'" in message and "FOSSILIZED" in message and "PRUNED" in message and "terminal" in message
    assert isinstance(info.value, LifecycleError)
    assert (info.value.slot, info.value.from_stage, info.value.to_stage) == ("late", S.FOSSILIZED, S.PRUNED)


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (slot(S.DORMANT), {Op.GERMINATE}),
        (slot(S.TRAINING, epochs_in_stage=1, seed_age=1), set()),
        (slot(S.TRAINING, epochs_in_stage=2, seed_age=2), {Op.ADVANCE}),
        (slot(S.TRAINING, epochs_in_stage=3, seed_age=3), {Op.ADVANCE, Op.PRUNE}),
        (slot(S.BLENDING, seed_age=2, alpha_at_target=False), {Op.SET_ALPHA_TARGET}),
        (slot(S.BLENDING, seed_age=3, alpha_at_target=True), {Op.SET_ALPHA_TARGET, Op.ADVANCE, Op.PRUNE}),
        (slot(S.HOLDING, seed_age=2), {Op.SET_ALPHA_TARGET, Op.FOSSILIZE}),
        (slot(S.HOLDING, seed_age=9), {Op.SET_ALPHA_TARGET, Op.FOSSILIZE, Op.PRUNE}),
        (slot(S.FOSSILIZED, seed_age=9, epochs_in_stage=9), set()),
        (slot(S.PRUNED, seed_age=9), set()),
        (slot(S.EMBARGOED, embargo_left=1), set()),
        (slot(S.RESETTING, epochs_in_stage=5), set()),
        (slot(S.GERMINATED, seed_age=9), set()),
    ],
)
def test_legal_ops_for_slot(summary: SlotSummary, expected: set[Op]) -> None:
    assert legal_ops_for_slot(summary, LC) == frozenset(expected)
    assert Op.WAIT not in legal_ops_for_slot(summary, LC)


def test_refusals_name_the_gate_and_its_threshold() -> None:
    early = op_refusal(Op.ADVANCE, slot(S.TRAINING, epochs_in_stage=1), LC)
    assert "min_training_epochs" in early and "needs 2" in early
    young = op_refusal(Op.PRUNE, slot(S.HOLDING, seed_age=1), LC)
    assert "min_prune_age" in young and "needs 3" in young
    blending = op_refusal(Op.ADVANCE, slot(S.BLENDING, alpha=0.2, alpha_target=0.7, alpha_at_target=False), LC)
    assert "blending_finished" in blending and "0.7" in blending
    assert "HOLDING" in op_refusal(Op.FOSSILIZE, slot(S.BLENDING), LC)
    assert op_refusal(Op.FOSSILIZE, slot(S.HOLDING), LC) is None


def test_germination_needs_a_dormant_slot() -> None:
    summaries = [slot(S.FOSSILIZED, "a"), slot(S.HOLDING, "b")]
    assert not germination_allowed(summaries, LC)
    assert "no DORMANT" in germination_refusal(summaries, LC)


def test_germination_respects_max_seeds() -> None:
    summaries = [slot(S.HOLDING, "a"), slot(S.BLENDING, "b"), slot(S.DORMANT, "c")]
    assert "max_seeds" in germination_refusal(summaries, LC)
    assert germination_allowed(summaries, LifecycleConfig(max_seeds=3))
    # fossilized seeds are host capacity, not live seeds
    assert germination_allowed([slot(S.FOSSILIZED, "a"), slot(S.FOSSILIZED, "b"), slot(S.DORMANT, "c")], LC)


@pytest.mark.parametrize("blocking", sorted(BLOCKS_GERMINATION))
def test_sequential_development_blocks_germination(blocking: S) -> None:
    summaries = [slot(blocking, "a"), slot(S.DORMANT, "b")]
    refusal = germination_refusal(summaries, LifecycleConfig(max_seeds=5))
    assert refusal is not None and "sequential_development" in refusal and f"a={blocking.name}" in refusal


@pytest.mark.parametrize("calm", [S.BLENDING, S.HOLDING, S.FOSSILIZED, S.DORMANT])
def test_calm_stages_do_not_block(calm: S) -> None:
    assert germination_allowed([slot(calm, "a"), slot(S.DORMANT, "b")], LifecycleConfig(max_seeds=5))
