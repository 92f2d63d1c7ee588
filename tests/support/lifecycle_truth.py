"""The lifecycle rules as plain Python over SlotSummary values: the truth the tensor masks are checked
against. Written from docs/design/contracts.md ("Lifecycle semantics"), independently of esper_core.rl.masks.

When ``esper_core.growth.lifecycle`` provides ``legal_ops_for_slot`` / ``germination_allowed``, those are used
(they are the executor's own gates); this reference stays for the topology checks the lifecycle module
does not know about, and its agreement with the lifecycle module is itself tested.
"""

from __future__ import annotations

from typing import Callable, Sequence

from esper_core.rl.actions import NOOP_BLUEPRINT, ActionSpace
from esper_core.config import LifecycleConfig
from esper_core.ops import Op
from esper_core.records import DecodedAction, EnvObservation, SlotSummary
from esper_core.stages import SeedStage as S

#: The causal table of docs/architecture.md ("Action space and causal relevance"), spelled out
#: independently of esper_core.ops.RELEVANT_HEADS.
#: SET_ALPHA_TARGET does not credit `style` (a retarget never changes a seed's blend style; see ops.py).
EXPECTED_RELEVANT: dict[Op, set[str]] = {
    Op.WAIT: {"op"},
    Op.GERMINATE: {"op", "slot", "blueprint", "style", "tempo", "alpha_target"},
    Op.SET_ALPHA_TARGET: {"op", "slot", "alpha_target", "alpha_speed", "alpha_curve"},
    Op.PRUNE: {"op", "slot", "alpha_speed", "alpha_curve"},
    Op.FOSSILIZE: {"op", "slot"},
    Op.ADVANCE: {"op", "slot"},
}

_BLOCKING = {S.GERMINATED, S.TRAINING, S.PRUNED, S.EMBARGOED, S.RESETTING}
_LIVE = {S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING}


def reference_legal_ops_for_slot(summary: SlotSummary, lifecycle: LifecycleConfig) -> frozenset[Op]:
    """Ops whose own gates hold at this slot (GERMINATE: only that the slot is empty)."""
    ops = set()
    if summary.stage == S.DORMANT:
        ops.add(Op.GERMINATE)
    if summary.stage == S.TRAINING and summary.epochs_in_stage >= lifecycle.min_training_epochs:
        ops.add(Op.ADVANCE)
    if summary.stage == S.BLENDING and summary.alpha_at_target:
        ops.add(Op.ADVANCE)
    if summary.stage in (S.BLENDING, S.HOLDING):
        ops.add(Op.SET_ALPHA_TARGET)
    if summary.stage in (S.TRAINING, S.BLENDING, S.HOLDING) and summary.seed_age >= lifecycle.min_prune_age:
        ops.add(Op.PRUNE)
    if summary.stage == S.HOLDING:
        ops.add(Op.FOSSILIZE)
    return frozenset(ops)


def reference_germination_allowed(summaries: Sequence[SlotSummary], lifecycle: LifecycleConfig) -> bool:
    """Env-wide germination gates: a DORMANT slot, seed limit, sequential development."""
    stages = [s.stage for s in summaries]
    return (
        any(st == S.DORMANT for st in stages)
        and sum(st in _LIVE for st in stages) < lifecycle.max_seeds
        and not any(st in _BLOCKING for st in stages)
    )


def lifecycle_functions() -> tuple[
    Callable[[SlotSummary, LifecycleConfig], frozenset[Op]], Callable[[Sequence[SlotSummary], LifecycleConfig], bool]
]:
    """The lifecycle module's gates when it exists, else the reference above."""
    try:
        from esper_core.growth.lifecycle import germination_allowed, legal_ops_for_slot  # type: ignore[attr-defined]
    except ImportError:
        return reference_legal_ops_for_slot, reference_germination_allowed

    def legal_ops(summary: SlotSummary, lifecycle: LifecycleConfig) -> frozenset[Op]:
        return frozenset(Op(op) for op in legal_ops_for_slot(summary, lifecycle))

    return legal_ops, germination_allowed


def _slot_can_host(space: ActionSpace, slot_index: int) -> bool:
    topology = space.slot_topologies[slot_index]
    blueprint_ok = any(topology in topos for topos in space.blueprint_topologies[1:])
    style_ok = any(topos is None or topology in topos for topos in space.style_topologies)
    return blueprint_ok and style_ok


def illegality(
    action: DecodedAction, observation: EnvObservation, space: ActionSpace, lifecycle: LifecycleConfig
) -> str | None:
    """Why ``action`` is illegal in ``observation`` (None when it is legal and would execute as is)."""
    if action.op == Op.WAIT:
        return None
    legal_ops, germination_allowed = lifecycle_functions()
    if action.slot not in space.slots:
        return f"{action.op.name} without a valid slot ({action.slot!r})"
    index = space.slots.index(action.slot)
    summary = observation.slots[index]
    if action.op not in legal_ops(summary, lifecycle):
        return f"{action.op.name} illegal at slot {action.slot} in stage {summary.stage.name}"
    topology = space.slot_topologies[index]
    if action.op == Op.GERMINATE:
        if not germination_allowed(observation.slots, lifecycle):
            return f"GERMINATE while germination is not allowed: {[s.stage.name for s in observation.slots]}"
        if action.blueprint in (None, NOOP_BLUEPRINT) or action.blueprint not in space.blueprints:
            return f"GERMINATE with blueprint {action.blueprint!r}"
        if topology not in space.blueprint_topologies[space.blueprints.index(action.blueprint)]:
            return f"blueprint {action.blueprint} does not support topology {topology}"
        if action.style not in space.styles:
            return f"GERMINATE with style {action.style!r}"
        style_topos = space.style_topologies[space.styles.index(action.style)]
        if style_topos is not None and topology not in style_topos:
            return f"style {action.style} does not support topology {topology}"
        if action.tempo not in space.tempos or action.alpha_target not in space.alpha_targets:
            return f"GERMINATE with tempo {action.tempo!r} / alpha_target {action.alpha_target!r}"
    if action.op == Op.SET_ALPHA_TARGET and action.alpha_target not in space.alpha_targets:
        return f"SET_ALPHA_TARGET with alpha_target {action.alpha_target!r}"
    if action.op in (Op.SET_ALPHA_TARGET, Op.PRUNE):
        if action.alpha_speed not in space.alpha_speeds or action.alpha_curve not in space.alpha_curves:
            return f"{action.op.name} with speed {action.alpha_speed!r} / curve {action.alpha_curve!r}"
    return None


def legal_ops_in_env(observation: EnvObservation, space: ActionSpace, lifecycle: LifecycleConfig) -> set[Op]:
    """Ops that have at least one legal slot in this env (WAIT always)."""
    legal_ops, germination_allowed = lifecycle_functions()
    ops = {Op.WAIT}
    for index, summary in enumerate(observation.slots):
        for op in legal_ops(summary, lifecycle):
            if op == Op.GERMINATE and not (
                germination_allowed(observation.slots, lifecycle) and _slot_can_host(space, index)
            ):
                continue
            ops.add(op)
    return ops


def slot_can_host(space: ActionSpace, slot_index: int) -> bool:
    return _slot_can_host(space, slot_index)
