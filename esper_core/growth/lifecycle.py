"""The seed lifecycle: one transition table and the gates, as pure functions over ``SlotSummary``.

Masks (tensor form, esper_core.rl.masks) and the executor (esper_core.growth.model) enforce the same rules; these
functions are the truth both are property-tested against. ``legal_ops_for_slot`` answers per slot;
GERMINATE additionally needs the env-wide ``germination_allowed`` (seed limit, sequential development).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Sequence

from esper_core.config.sections import LifecycleConfig
from esper_core.ops import Op
from esper_core.records import SlotSummary
from esper_core.stages import BLOCKS_GERMINATION, LIVE_SEED_STAGES, PRUNABLE_STAGES, SeedStage

S = SeedStage

#: Every legal stage change. HOLDING -> BLENDING is a retarget (SET_ALPHA_TARGET); PRUNED is reachable from
#: every stage that holds a not yet permanent seed; FOSSILIZED is terminal.
TRANSITIONS: Mapping[SeedStage, frozenset[SeedStage]] = MappingProxyType(
    {
        S.DORMANT: frozenset({S.GERMINATED}),
        S.GERMINATED: frozenset({S.TRAINING, S.PRUNED}),
        S.TRAINING: frozenset({S.BLENDING, S.PRUNED}),
        S.BLENDING: frozenset({S.HOLDING, S.PRUNED}),
        S.HOLDING: frozenset({S.FOSSILIZED, S.PRUNED, S.BLENDING}),
        S.FOSSILIZED: frozenset(),
        S.PRUNED: frozenset({S.EMBARGOED}),
        S.EMBARGOED: frozenset({S.RESETTING}),
        S.RESETTING: frozenset({S.DORMANT}),
    }
)

#: Ops that act on one slot (WAIT acts on none).
SLOT_OPS: tuple[Op, ...] = (Op.GERMINATE, Op.SET_ALPHA_TARGET, Op.PRUNE, Op.FOSSILIZE, Op.ADVANCE)


class LifecycleError(Exception):
    """An operation the lifecycle forbids. The message names the slot, its stage and the failed gate."""


class IllegalTransition(LifecycleError):
    """A stage change that is not in the transition table."""

    def __init__(self, slot: str, from_stage: SeedStage, to_stage: SeedStage) -> None:
        allowed = ", ".join(s.name for s in sorted(TRANSITIONS[from_stage])) or "none (terminal)"
        super().__init__(
            f"slot {slot!r}: illegal transition {from_stage.name} -> {to_stage.name} "
            f"(from {from_stage.name} the table allows: {allowed})"
        )
        self.slot = slot
        self.from_stage = from_stage
        self.to_stage = to_stage


class GateClosed(LifecycleError):
    """An op whose gate does not hold in the slot's current state."""

    def __init__(self, op: Op, slot: str, stage: SeedStage, reason: str) -> None:
        super().__init__(f"{op.name} refused at slot {slot!r} (stage {stage.name}): {reason}")
        self.op = op
        self.slot = slot
        self.stage = stage
        self.reason = reason


class BadOpArgument(LifecycleError, ValueError):
    """An op called with an argument outside what the model knows (unknown blueprint, alpha out of range...)."""


class SeedShapeError(LifecycleError):
    """A germinated seed or blend style does not map the slot's features to the same shape (or fails to build
    or run at all). ``culprit`` names the plugin that broke its contract, ``(kind, name)`` with kind
    ``"blueprint"`` or ``"blend_style"``, so a run can disable it instead of crashing."""

    def __init__(self, message: str, culprit: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.culprit = culprit


def check_transition(slot: str, from_stage: SeedStage, to_stage: SeedStage) -> None:
    """Raise ``IllegalTransition`` unless ``from_stage -> to_stage`` is in the table."""
    if to_stage not in TRANSITIONS[from_stage]:
        raise IllegalTransition(slot, from_stage, to_stage)


def op_refusal(op: Op, summary: SlotSummary, lifecycle: LifecycleConfig) -> str | None:
    """Why ``op`` may not act on this slot (None when its per-slot gates hold).

    GERMINATE here only needs an empty slot; the env-wide gates are ``germination_refusal``'s.
    """
    stage = summary.stage
    if op == Op.WAIT:
        return "WAIT does not act on a slot"
    if op == Op.GERMINATE:
        return None if stage == S.DORMANT else "GERMINATE needs a DORMANT (empty) slot"
    if op == Op.ADVANCE:
        if stage == S.TRAINING:
            if summary.epochs_in_stage < lifecycle.min_training_epochs:
                return (
                    f"gate min_training_epochs: {summary.epochs_in_stage} epoch(s) in TRAINING, "
                    f"needs {lifecycle.min_training_epochs} (lifecycle.min_training_epochs)"
                )
            return None
        if stage == S.BLENDING:
            if not summary.alpha_at_target:
                return (
                    f"gate blending_finished: alpha {summary.alpha:.4g} has not reached its target "
                    f"{summary.alpha_target:.4g} yet"
                )
            return None
        return "ADVANCE applies only in TRAINING (-> BLENDING) or BLENDING (-> HOLDING)"
    if op == Op.SET_ALPHA_TARGET:
        return None if stage in (S.BLENDING, S.HOLDING) else "SET_ALPHA_TARGET applies only in BLENDING or HOLDING"
    if op == Op.PRUNE:
        if stage not in PRUNABLE_STAGES:
            return "PRUNE applies only in TRAINING, BLENDING or HOLDING"
        if summary.seed_age < lifecycle.min_prune_age:
            return (
                f"gate min_prune_age: seed age {summary.seed_age} epoch(s), "
                f"needs {lifecycle.min_prune_age} (lifecycle.min_prune_age)"
            )
        return None
    if op == Op.FOSSILIZE:
        return None if stage == S.HOLDING else "FOSSILIZE applies only in HOLDING"
    raise ValueError(f"unknown op {op!r}")


def legal_ops_for_slot(summary: SlotSummary, lifecycle: LifecycleConfig) -> frozenset[Op]:
    """Slot ops whose per-slot gates hold (never WAIT; GERMINATE still needs ``germination_allowed``)."""
    return frozenset(op for op in SLOT_OPS if op_refusal(op, summary, lifecycle) is None)


def germination_refusal(summaries: Sequence[SlotSummary], lifecycle: LifecycleConfig) -> str | None:
    """Why no germination may happen anywhere in this env now (None when it may)."""
    if not any(s.stage == S.DORMANT for s in summaries):
        return "no DORMANT slot"
    live = [s.name for s in summaries if s.stage in LIVE_SEED_STAGES]
    if len(live) >= lifecycle.max_seeds:
        return f"gate max_seeds: {len(live)} live seed(s) {live}, limit {lifecycle.max_seeds} (lifecycle.max_seeds)"
    blocking = [f"{s.name}={s.stage.name}" for s in summaries if s.stage in BLOCKS_GERMINATION]
    if blocking:
        return f"gate sequential_development: waiting for {', '.join(blocking)}"
    return None


def germination_allowed(summaries: Sequence[SlotSummary], lifecycle: LifecycleConfig) -> bool:
    """Env-wide germination gates: a DORMANT slot, the seed limit, sequential development."""
    return germination_refusal(summaries, lifecycle) is None
