"""Hand-built observations and episodes for reward tests (no model, no env: just the records).

A slot's life is written as a *path*: one (stage, alpha) pair per observation, index 0 being the state at
episode start. ``timeline`` turns a path into SlotSummary records; ``episode_inputs`` zips several slots'
timelines with validation accuracies into the RewardInputs of consecutive steps.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import attrs

from esper_core.ops import Op
from esper_core.records import DecodedAction, EnvObservation, RewardInputs, SlotSummary
from esper_core.stages import LIVE_SEED_STAGES, SeedStage

HOST_PARAMS = 100_000
SEED_PARAMS = 5_000

Path = list[tuple[SeedStage, float]]

#: Stages in which a seed module exists (and alpha may be > 0, so a contribution is measured).
_SEED_STAGES = LIVE_SEED_STAGES | {SeedStage.PRUNED, SeedStage.FOSSILIZED}


def slot(name: str = "s0", stage: SeedStage = SeedStage.DORMANT, **fields: object) -> SlotSummary:
    return SlotSummary(name=name, stage=stage, **fields)


def observation(
    epoch: int,
    slots: Sequence[SlotSummary],
    *,
    val_acc: float = 0.5,
    val_loss: float | None = None,
    host_params: int = HOST_PARAMS,
    episode_length: int = 40,
    **fields: object,
) -> EnvObservation:
    """An observation whose param totals agree with its slots (fossilized seeds count as host)."""
    live = sum(s.seed_params for s in slots if s.stage in LIVE_SEED_STAGES | {SeedStage.PRUNED})
    fossil = sum(s.seed_params for s in slots if s.stage is SeedStage.FOSSILIZED)
    values: dict[str, object] = dict(
        epoch=epoch,
        episode_length=episode_length,
        topology="cnn",
        train_loss=1.0,
        train_acc=val_acc,
        val_loss=(1.0 - val_acc) if val_loss is None else val_loss,
        val_acc=val_acc,
        val_acc_delta=0.0,
        val_loss_delta=0.0,
        best_val_acc=val_acc,
        plateau_epochs=0,
        host_params=host_params + fossil,
        seed_params=live,
        param_budget_used=(live + fossil) / host_params,
        last_op=Op.WAIT,
        last_action_ok=True,
        slots=tuple(slots),
    )
    values.update(fields)
    return EnvObservation(**values)


def timeline(
    name: str,
    path: Sequence[tuple[SeedStage, float]],
    contributions: Sequence[float | None] | float | None = None,
    *,
    seed_params: int = SEED_PARAMS,
    blueprint: str = "conv_small",
) -> list[SlotSummary]:
    """SlotSummary per step; ``contributions`` (per step, or one value for all) is reported where alpha > 0."""
    out: list[SlotSummary] = []
    in_stage, age = 0, 0
    for t, (stage, alpha) in enumerate(path):
        in_stage = in_stage + 1 if t > 0 and path[t - 1][0] is stage else 0
        has_seed = stage in _SEED_STAGES
        age = age + 1 if has_seed else 0
        if isinstance(contributions, Sequence):
            measured = contributions[t]
        else:
            measured = contributions
        out.append(
            slot(
                name,
                stage,
                blueprint=blueprint if has_seed else None,
                style="linear_add" if has_seed else None,
                alpha=alpha,
                alpha_target=alpha,
                epochs_in_stage=in_stage,
                seed_age=age,
                seed_params=seed_params if has_seed else 0,
                last_contribution=measured if (has_seed and alpha > 0.0) else None,
            )
        )
    return out


def germinate_prune_path(
    *,
    lead: int = 1,
    training: int = 3,
    blend: int | None = 3,
    tempo: int = 3,
    target: float = 1.0,
    hold: int = 0,
    fade: int = 0,
    instant_shows_pruned: bool = False,
    embargo: int = 2,
    resetting: int = 1,
    trail: int = 1,
) -> Path:
    """DORMANT x lead -> TRAINING x training -> [BLENDING x blend (<= tempo) -> HOLDING x hold] -> prune
    (instant, or a fade over ``fade`` steps) -> EMBARGOED -> RESETTING -> DORMANT x trail.

    ``blend=None`` prunes from TRAINING; ``blend < tempo`` prunes mid-blend; ``hold`` > 0 needs a full blend.
    """
    path: Path = [(SeedStage.DORMANT, 0.0)] * lead + [(SeedStage.TRAINING, 0.0)] * training
    alpha = 0.0
    if blend is not None:
        for i in range(1, blend + 1):
            alpha = target * min(1.0, i / tempo)
            path.append((SeedStage.BLENDING, alpha))
        path += [(SeedStage.HOLDING, alpha)] * hold
    if fade == 0:
        if instant_shows_pruned:
            path.append((SeedStage.PRUNED, 0.0))
    else:
        start = alpha
        path += [(SeedStage.PRUNED, start * (1.0 - i / fade)) for i in range(1, fade + 1)]
    path += [(SeedStage.EMBARGOED, 0.0)] * embargo + [(SeedStage.RESETTING, 0.0)] * resetting
    return path + [(SeedStage.DORMANT, 0.0)] * trail


def fossilize_path(
    *, lead: int = 1, training: int = 2, tempo: int = 3, target: float = 1.0, hold: int = 1, after: int = 1
) -> Path:
    path: Path = [(SeedStage.DORMANT, 0.0)] * lead + [(SeedStage.TRAINING, 0.0)] * training
    path += [(SeedStage.BLENDING, target * i / tempo) for i in range(1, tempo + 1)]
    path += [(SeedStage.HOLDING, target)] * hold
    return path + [(SeedStage.FOSSILIZED, target)] * after


def dormant_path(length: int) -> Path:
    return [(SeedStage.DORMANT, 0.0)] * length


def pad(path: Path, length: int) -> Path:
    """Extend a path by repeating its last state (DORMANT stays DORMANT, FOSSILIZED stays FOSSILIZED)."""
    return list(path) + [path[-1]] * (length - len(path))


def action_between(name: str, before: SlotSummary, after: SlotSummary) -> DecodedAction | None:
    """The op that turns ``before`` into ``after`` in this slot, or None when only time passed."""
    if before.stage in (SeedStage.DORMANT,) and after.stage in LIVE_SEED_STAGES:
        return DecodedAction(
            op=Op.GERMINATE, slot=name, blueprint=after.blueprint, style=after.style, tempo=3, alpha_target=1.0
        )
    if before.stage is SeedStage.TRAINING and after.stage is SeedStage.BLENDING:
        return DecodedAction(op=Op.ADVANCE, slot=name)
    if before.stage in LIVE_SEED_STAGES and after.stage in (SeedStage.PRUNED, SeedStage.EMBARGOED):
        speed = "instant" if after.alpha == 0.0 else "fast"
        return DecodedAction(op=Op.PRUNE, slot=name, alpha_speed=speed, alpha_curve="linear")
    if after.stage is SeedStage.FOSSILIZED and before.stage is not SeedStage.FOSSILIZED:
        return DecodedAction(op=Op.FOSSILIZE, slot=name)
    return None


@attrs.frozen
class Episode:
    inputs: tuple[RewardInputs, ...]

    def run(self, reward: object) -> list[tuple[float, dict[str, float]]]:
        reward.reset()  # type: ignore[attr-defined]
        return [reward(i) for i in self.inputs]  # type: ignore[operator]


def episode(
    timelines: Mapping[str, Sequence[SlotSummary]],
    val_accs: Sequence[float],
    *,
    done: bool = False,
    val_losses: Sequence[float] | None = None,
    start_epoch: int = 0,
) -> Episode:
    """Consecutive steps over equally long timelines; the last step is ``done`` if asked."""
    lengths = {len(t) for t in timelines.values()} | {len(val_accs)}
    if len(lengths) != 1:
        raise ValueError(f"timelines and val_accs must have one length, got {sorted(lengths)}")
    (length,) = lengths
    observations = [
        observation(
            start_epoch + t,
            [timelines[name][t] for name in timelines],
            val_acc=val_accs[t],
            val_loss=None if val_losses is None else val_losses[t],
        )
        for t in range(length)
    ]
    inputs = []
    for t in range(length - 1):
        ops = [action_between(n, timelines[n][t], timelines[n][t + 1]) for n in timelines]
        chosen = [a for a in ops if a is not None]
        action = chosen[0] if chosen else DecodedAction(op=Op.WAIT)
        inputs.append(
            RewardInputs(
                before=observations[t],
                action=action,
                after=observations[t + 1],
                done=done and t == length - 2,
            )
        )
    return Episode(tuple(inputs))
