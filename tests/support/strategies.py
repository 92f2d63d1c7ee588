"""Hypothesis strategies shared by the property tests: written once, reused everywhere.

Tensors are drawn from a seed plus a few structural choices (scale, spikes) rather than element by
element: that keeps examples fast on a small CPU while still reaching extreme values.
"""

from __future__ import annotations

from typing import Sequence

import torch
from hypothesis import strategies as st

from esper_core.rl.actions import ActionSpace
from esper_core.config import LifecycleConfig
from esper_core.ops import ALPHA_CURVES, ALPHA_SPEEDS, HEADS, Op
from esper_core.records import EnvObservation, SlotSummary
from esper_core.stages import BLOCKS_GERMINATION, SeedStage

TOPOLOGIES = ("cnn", "mlp")
#: Stages that never block a germination: drawing only these makes GERMINATE reachable often.
CALM_STAGES = tuple(s for s in SeedStage if s not in BLOCKS_GERMINATION)
LOGIT_SCALES = (0.0, 0.01, 1.0, 30.0, 1e4, 1e6)


# ------------------------------------------------------------------------------------- configuration
@st.composite
def lifecycle_configs(draw: st.DrawFn) -> LifecycleConfig:
    return LifecycleConfig(
        min_training_epochs=draw(st.integers(0, 4)),
        min_prune_age=draw(st.integers(0, 6)),
        embargo_epochs=draw(st.integers(0, 3)),
        resetting_epochs=draw(st.integers(0, 2)),
        max_seeds=draw(st.integers(1, 4)),
    )


def _unique_names(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(count))


@st.composite
def action_spaces(
    draw: st.DrawFn,
    min_slots: int = 1,
    max_slots: int = 4,
    min_blueprints: int = 0,
    max_blueprints: int = 5,
    fully_supported: bool = False,
) -> ActionSpace:
    """Random spaces: some blueprints/styles may not support the host topology (or none may).

    ``fully_supported``: the first blueprint and style fit every topology, so every slot can host a seed
    and only the lifecycle rules decide legality."""
    if fully_supported:
        min_blueprints = max(1, min_blueprints)
    topology = draw(st.sampled_from(TOPOLOGIES))
    n_slots = draw(st.integers(min_slots, max_slots))
    blueprints = _unique_names("bp", draw(st.integers(min_blueprints, max_blueprints)))
    topology_sets = st.sets(st.sampled_from(TOPOLOGIES), max_size=len(TOPOLOGIES))
    blueprint_topologies = {b: draw(topology_sets) for b in blueprints}
    styles = _unique_names("style", draw(st.integers(1, 4)))
    style_topologies = {s: draw(st.one_of(st.none(), topology_sets)) for s in styles}
    if fully_supported:
        blueprint_topologies[blueprints[0]] = set(TOPOLOGIES)
        style_topologies[styles[0]] = None
    mixed_slots = draw(st.booleans())
    slot_topologies = (
        [draw(st.sampled_from(TOPOLOGIES)) for _ in range(n_slots)] if mixed_slots else [topology] * n_slots
    )
    return ActionSpace.build(
        slots=_unique_names("slot", n_slots),
        blueprints=blueprints,
        blueprint_topologies=blueprint_topologies,
        styles=styles,
        style_topologies=style_topologies,
        tempos=draw(st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True)),
        alpha_targets=draw(st.lists(st.sampled_from((0.3, 0.5, 0.7, 0.9, 1.0)), min_size=1, max_size=4, unique=True)),
        alpha_speeds=tuple(ALPHA_SPEEDS),
        alpha_curves=ALPHA_CURVES,
        topology=topology,
        slot_topologies=slot_topologies,
    )


# ----------------------------------------------------------------------------------------- env state
@st.composite
def slot_summaries(
    draw: st.DrawFn, name: str, lifecycle: LifecycleConfig, stages: Sequence[SeedStage] = tuple(SeedStage)
) -> SlotSummary:
    """One slot with fields consistent with its stage; counters cluster around the lifecycle gates."""
    stage = draw(st.sampled_from(tuple(stages)))
    near_gate = max(lifecycle.min_training_epochs, lifecycle.min_prune_age) + 2
    if stage == SeedStage.DORMANT:
        return SlotSummary(name=name, stage=stage, epochs_in_stage=draw(st.integers(0, 6)))
    epochs_in_stage = 0 if stage == SeedStage.GERMINATED else draw(st.integers(0, near_gate))
    seed_age = epochs_in_stage + draw(st.integers(0, near_gate))
    target = draw(st.sampled_from((0.5, 0.7, 1.0)))
    at_target = stage in (SeedStage.HOLDING, SeedStage.FOSSILIZED) or (
        stage == SeedStage.BLENDING and draw(st.booleans())
    )
    if at_target:
        alpha = target
    elif stage in (SeedStage.BLENDING, SeedStage.PRUNED):
        alpha = draw(st.floats(0.0, target * 0.99))
    else:
        alpha = 0.0
    return SlotSummary(
        name=name,
        stage=stage,
        blueprint="bp0",
        style="style0",
        alpha=alpha,
        alpha_target=0.0 if stage in (SeedStage.EMBARGOED, SeedStage.RESETTING) else target,
        alpha_at_target=at_target,
        epochs_in_stage=epochs_in_stage,
        seed_age=seed_age,
        embargo_left=draw(st.integers(1, max(1, lifecycle.embargo_epochs))) if stage == SeedStage.EMBARGOED else 0,
        seed_params=0 if stage in (SeedStage.EMBARGOED, SeedStage.RESETTING) else draw(st.integers(1, 10_000)),
    )


@st.composite
def env_observations(draw: st.DrawFn, space: ActionSpace, lifecycle: LifecycleConfig) -> EnvObservation:
    """One env's observation; about half the time every slot is in a non-blocking stage."""
    stages = CALM_STAGES if draw(st.booleans()) else tuple(SeedStage)
    slots = tuple(draw(slot_summaries(name, lifecycle, stages)) for name in space.slots)
    episode_length = draw(st.integers(1, 30))
    return EnvObservation(
        epoch=draw(st.integers(0, episode_length - 1)),
        episode_length=episode_length,
        topology=space.topology,
        train_loss=1.0,
        train_acc=0.5,
        val_loss=1.1,
        val_acc=0.45,
        val_acc_delta=0.0,
        val_loss_delta=0.0,
        best_val_acc=0.45,
        plateau_epochs=0,
        host_params=100_000,
        seed_params=sum(s.seed_params for s in slots),
        param_budget_used=0.1,
        last_op=draw(st.sampled_from(tuple(Op))),
        last_action_ok=True,
        slots=slots,
    )


def env_batches(
    space: ActionSpace, lifecycle: LifecycleConfig, min_envs: int = 1, max_envs: int = 6
) -> st.SearchStrategy[list[EnvObservation]]:
    return st.lists(env_observations(space, lifecycle), min_size=min_envs, max_size=max_envs)


@st.composite
def rl_setups(
    draw: st.DrawFn, spaces: st.SearchStrategy[ActionSpace] | None = None, max_envs: int = 6
) -> tuple[ActionSpace, LifecycleConfig, list[EnvObservation]]:
    """A consistent (space, lifecycle, observations) triple."""
    space = draw(spaces if spaces is not None else action_spaces())
    lifecycle = draw(lifecycle_configs())
    return space, lifecycle, draw(env_batches(space, lifecycle, max_envs=max_envs))


# -------------------------------------------------------------------------------------------- tensors
def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@st.composite
def logit_tensors(draw: st.DrawFn, shape: Sequence[int]) -> torch.Tensor:
    """float32 logits: Gaussian at a drawn scale (up to 1e6), sometimes with +-1e6 spikes or ties."""
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from(LOGIT_SCALES))
    logits = torch.randn(*shape, generator=generator(seed)) * scale
    if draw(st.booleans()):
        spikes = torch.rand(*shape, generator=generator(seed + 1)) < 0.2
        signs = torch.where(torch.rand(*shape, generator=generator(seed + 2)) < 0.5, -1.0, 1.0)
        logits = torch.where(spikes, signs * 1e6, logits)
    return logits


def head_logits(sizes: dict[str, int], n_envs: int) -> st.SearchStrategy[dict[str, torch.Tensor]]:
    return st.fixed_dictionaries({h: logit_tensors((n_envs, sizes[h])) for h in HEADS})


@st.composite
def bool_masks(draw: st.DrawFn, shape: Sequence[int], min_valid: int = 1) -> torch.Tensor:
    """Random masks with at least ``min_valid`` valid entries per row (min_valid <= shape[-1])."""
    seed = draw(st.integers(0, 2**31 - 1))
    density = draw(st.sampled_from((0.0, 0.3, 0.7, 1.0)))
    mask = torch.rand(*shape, generator=generator(seed)) < density
    # Force ``min_valid`` distinct random entries per row to be valid.
    order = torch.rand(*shape, generator=generator(seed + 1)).argsort(-1)
    forced = torch.zeros(*shape, dtype=torch.bool).scatter(-1, order[..., :min_valid], True)
    return mask | forced


def floors_for(width: int, strict: bool = False) -> st.SearchStrategy[float]:
    """A probability floor with floor * width <= 1 (so it holds for any number of valid entries);
    ``strict``: floor * width < 1, so the softmax part keeps some weight."""
    if strict:
        return st.one_of(st.just(0.0), st.floats(0.0, 0.9 / width))
    return st.one_of(st.just(0.0), st.just(1.0 / width), st.floats(0.0, 1.0 / width))


def head_floors(sizes: dict[str, int], strict: bool = False) -> st.SearchStrategy[dict[str, float]]:
    return st.fixed_dictionaries({h: floors_for(sizes[h], strict) for h in HEADS})
