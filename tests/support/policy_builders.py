"""A small, fixed action space and policy context for the non-learning policy tests."""

from __future__ import annotations

from typing import Sequence

import torch

from esper_core.rl.actions import ActionSpace
from esper_core.config import LifecycleConfig
from esper_core.records import EnvObservation, PolicyContext, SlotSummary
from esper_core.stages import SeedStage
from support.reward_builders import observation, slot

SLOTS = ("s0", "s1", "s2")
BLUEPRINTS = ("conv_light", "conv_small", "conv_heavy")
STYLES = ("linear_add", "gated")
LIFECYCLE = LifecycleConfig(min_training_epochs=2, min_prune_age=3, max_seeds=3)


def space(blueprints: Sequence[str] = BLUEPRINTS, styles: Sequence[str] = STYLES) -> ActionSpace:
    return ActionSpace.build(
        slots=SLOTS,
        blueprints=blueprints,
        blueprint_topologies={b: {"cnn"} for b in blueprints},
        styles=styles,
        tempos=(3, 5, 8),
        alpha_targets=(0.5, 0.7, 1.0),
        topology="cnn",
    )


def context(seed: int = 0, n_envs: int = 1, action_space: ActionSpace | None = None) -> PolicyContext:
    return PolicyContext(
        space=space() if action_space is None else action_space,
        n_envs=n_envs,
        episode_length=20,
        device=torch.device("cpu"),
        seed=seed,
        lifecycle=LIFECYCLE,
    )


def seed_slot(name: str, stage: SeedStage, **fields: object) -> SlotSummary:
    defaults: dict[str, object] = dict(blueprint="conv_small", style="linear_add", seed_params=1_000, alpha_target=1.0)
    defaults.update(fields)
    return slot(name, stage, **defaults)


def env(*slots: SlotSummary, epoch: int = 5, val_acc: float = 0.5) -> EnvObservation:
    """An observation over SLOTS; slots not given are DORMANT."""
    given = {s.name: s for s in slots}
    return observation(epoch, [given.get(n, slot(n)) for n in SLOTS], val_acc=val_acc)
