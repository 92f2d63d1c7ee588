"""Action masks and causal head relevance, as batched tensor ops over envs x slots.

Masks follow the lifecycle rules of docs/design/contracts.md and are conditional, in sampling order:
op (from the whole env state) -> slot (slots where the chosen op is legal) -> blueprint and style (entries
supporting the chosen slot's topology, less those the run disabled, ``EnvObservation.disabled_*``) ->
tempo, alpha_target, alpha_speed, alpha_curve (all valid).
Every head always has at least one valid entry, also when the op makes it irrelevant: an irrelevant head
keeps the mask it would have if relevant, so its entropy term still sees the choices it would face.

``alpha_target`` stays fully valid on SET_ALPHA_TARGET, the current target included: retargeting to the
same value with another speed or curve is a legal (if rarely useful) action, and excluding it would make
the mask depend on float equality of targets for no gain in legality.
"""

from __future__ import annotations

import functools
from typing import Sequence

import attrs
import torch

from esper_core.rl.actions import ActionSpace
from esper_core.config.sections import LifecycleConfig
from esper_core.ops import HEADS, RELEVANT_HEADS, VALUE_HEADS, Op
from esper_core.records import EnvObservation
from esper_core.stages import BLOCKS_GERMINATION, LIVE_SEED_STAGES, SeedStage

N_OPS = len(Op)


@attrs.frozen(kw_only=True, eq=False)
class MaskInputs:
    """What the masks depend on, for E envs x S slots (all tensors on one device).

    ``stage``, ``epochs_in_stage``, ``seed_age``: int64 [E, S]; ``alpha_at_target``: bool [E, S];
    ``blueprint_support``: bool [E, S, B] (``noop`` column False); ``style_support``: bool [E, S, St].
    The lifecycle gates and the head sizes travel along so the masks of any joint action can be
    computed from this object alone.
    """

    stage: torch.Tensor
    epochs_in_stage: torch.Tensor
    seed_age: torch.Tensor
    alpha_at_target: torch.Tensor
    blueprint_support: torch.Tensor
    style_support: torch.Tensor
    min_training_epochs: int
    min_prune_age: int
    max_seeds: int
    head_sizes: dict[str, int]

    def __attrs_post_init__(self) -> None:
        shape = tuple(self.stage.shape)
        if len(shape) != 2:
            raise ValueError(f"MaskInputs.stage must be [envs, slots]; got shape {shape}")
        for name in ("epochs_in_stage", "seed_age", "alpha_at_target"):
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"MaskInputs.{name} must have shape {shape}; got {got}")
        for name, head in (("blueprint_support", "blueprint"), ("style_support", "style")):
            got = tuple(getattr(self, name).shape)
            expected = (*shape, self.head_sizes.get(head))
            if got != expected:
                raise ValueError(f"MaskInputs.{name} must be [envs, slots, len({head!r} head)] = {expected}; got {got}")

    @property
    def n_envs(self) -> int:
        return self.stage.shape[0]

    @property
    def n_slots(self) -> int:
        return self.stage.shape[1]

    @property
    def device(self) -> torch.device:
        return self.stage.device

    def env_rows(self, env: int) -> "MaskInputs":
        """The inputs of env ``env`` alone (a one-env batch): what a rule-based policy deciding env by env
        builds its masks from."""
        rows = slice(env, env + 1)
        return attrs.evolve(
            self,
            stage=self.stage[rows],
            epochs_in_stage=self.epochs_in_stage[rows],
            seed_age=self.seed_age[rows],
            alpha_at_target=self.alpha_at_target[rows],
            blueprint_support=self.blueprint_support[rows],
            style_support=self.style_support[rows],
        )


def mask_inputs_from_tensors(
    stage: torch.Tensor,
    epochs_in_stage: torch.Tensor,
    seed_age: torch.Tensor,
    alpha_at_target: torch.Tensor,
    space: ActionSpace,
    lifecycle: LifecycleConfig,
) -> MaskInputs:
    """For callers that already keep slot state as [E, S] tensors (no host round trip)."""
    if stage.shape[-1] != len(space.slots):
        raise ValueError(f"slot state has {stage.shape[-1]} slots; the action space has {space.slots}")
    n_envs, device = stage.shape[0], stage.device
    return MaskInputs(
        stage=stage.long(),
        epochs_in_stage=epochs_in_stage.long(),
        seed_age=seed_age.long(),
        alpha_at_target=alpha_at_target.bool(),
        blueprint_support=space.blueprint_support(device).unsqueeze(0).expand(n_envs, -1, -1),
        style_support=space.style_support(device).unsqueeze(0).expand(n_envs, -1, -1),
        min_training_epochs=lifecycle.min_training_epochs,
        min_prune_age=lifecycle.min_prune_age,
        max_seeds=lifecycle.max_seeds,
        head_sizes=space.head_sizes,
    )


def mask_inputs_from_observations(
    observations: Sequence[EnvObservation],
    space: ActionSpace,
    lifecycle: LifecycleConfig,
    device: torch.device | str | None = None,
) -> MaskInputs:
    """Observations (host-side values) -> MaskInputs with one host-to-device transfer."""
    if len(observations) == 0:
        raise ValueError("mask_inputs_from_observations needs at least one observation")
    rows = []
    for env, obs in enumerate(observations):
        names = tuple(s.name for s in obs.slots)
        if names != space.slots:
            raise ValueError(f"observation of env {env} has slots {names}; the action space expects {space.slots}")
        rows.append([(int(s.stage), s.epochs_in_stage, s.seed_age, int(s.alpha_at_target)) for s in obs.slots])
    n_envs, n_slots = len(rows), len(space.slots)
    state = torch.tensor(rows, dtype=torch.long)
    support = torch.cat([space.blueprint_support(), space.style_support()], dim=1)
    # Slot state and topology support travel together: one host-to-device copy.
    packed = torch.cat([state.flatten(), support.long().flatten()]).to(device)
    state, support = packed[: state.numel()].view(n_envs, n_slots, 4), packed[state.numel() :].view(n_slots, -1).bool()
    n_blueprints = len(space.blueprints)
    blueprint_support = support[:, :n_blueprints].unsqueeze(0).expand(n_envs, -1, -1)
    style_support = support[:, n_blueprints:].unsqueeze(0).expand(n_envs, -1, -1)
    enabled = _enabled_entries(observations, space)
    if enabled is not None:  # some blueprint or style broke its contract: never offered again
        enabled = enabled.to(device)
        blueprint_support = blueprint_support & enabled[:, None, :n_blueprints]
        style_support = style_support & enabled[:, None, n_blueprints:]
    return MaskInputs(
        stage=state[..., 0],
        epochs_in_stage=state[..., 1],
        seed_age=state[..., 2],
        alpha_at_target=state[..., 3].bool(),
        blueprint_support=blueprint_support,
        style_support=style_support,
        min_training_epochs=lifecycle.min_training_epochs,
        min_prune_age=lifecycle.min_prune_age,
        max_seeds=lifecycle.max_seeds,
        head_sizes=space.head_sizes,
    )


def _enabled_entries(observations: Sequence[EnvObservation], space: ActionSpace) -> torch.Tensor | None:
    """Bool [E, B + St]: blueprint and style entries not disabled in each env's observation (None when
    nothing is disabled anywhere, the usual case, so the masks cost nothing extra)."""
    if not any(obs.disabled_blueprints or obs.disabled_styles for obs in observations):
        return None
    rows = [
        [name not in obs.disabled_blueprints for name in space.blueprints]
        + [name not in obs.disabled_styles for name in space.styles]
        for obs in observations
    ]
    return torch.tensor(rows, dtype=torch.bool)


#: Columns of the per-stage property table used by the masks.
_STAGE_PROPERTIES = ("dormant", "training", "blending", "holding", "live", "blocks_germination")


@functools.lru_cache(maxsize=8)
def _stage_table(device: torch.device) -> torch.Tensor:
    """Bool [n_stages, len(_STAGE_PROPERTIES)], built once per device (read-only: callers only index it),
    so the masks index one table instead of comparing against every stage."""
    rows = [
        [
            stage == SeedStage.DORMANT,
            stage == SeedStage.TRAINING,
            stage == SeedStage.BLENDING,
            stage == SeedStage.HOLDING,
            stage in LIVE_SEED_STAGES,
            stage in BLOCKS_GERMINATION,
        ]
        for stage in SeedStage
    ]
    return torch.tensor(rows, dtype=torch.bool, device=device)


def slot_op_legality(inputs: MaskInputs) -> torch.Tensor:
    """Bool [E, S, N_OPS]: op o is legal on slot s (WAIT: every slot, the slot head being irrelevant)."""
    dormant, training, blending, holding, live, blocks = _stage_table(inputs.device)[inputs.stage].unbind(-1)
    can_host = dormant & inputs.blueprint_support.any(-1) & inputs.style_support.any(-1)
    sequential_ok = ~blocks.any(-1)
    env_may_germinate = sequential_ok & (live.sum(-1) < inputs.max_seeds)
    blending_or_holding = blending | holding
    per_op = {
        Op.WAIT: torch.ones_like(dormant),
        Op.GERMINATE: can_host & env_may_germinate.unsqueeze(-1),
        Op.SET_ALPHA_TARGET: blending_or_holding,
        Op.PRUNE: (training | blending_or_holding) & (inputs.seed_age >= inputs.min_prune_age),
        Op.FOSSILIZE: holding,
        Op.ADVANCE: (training & (inputs.epochs_in_stage >= inputs.min_training_epochs))
        | (blending & inputs.alpha_at_target),
    }
    return torch.stack([per_op[op] for op in Op], dim=-1)


def op_mask(inputs: MaskInputs, legality: torch.Tensor | None = None) -> torch.Tensor:
    """Bool [E, N_OPS]: an op is valid when it is legal on some slot (WAIT always)."""
    legality = slot_op_legality(inputs) if legality is None else legality
    return legality.any(dim=1)


def slot_mask(inputs: MaskInputs, ops: torch.Tensor, legality: torch.Tensor | None = None) -> torch.Tensor:
    """Bool [E, S]: slots where the chosen op is legal (every slot for WAIT)."""
    legality = slot_op_legality(inputs) if legality is None else legality
    index = ops.long().view(-1, 1, 1).expand(-1, legality.shape[1], 1)
    return legality.gather(2, index).squeeze(2)


def _support_at(support: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    index = slots.long().view(-1, 1, 1).expand(-1, 1, support.shape[2])
    return support.gather(1, index).squeeze(1)


def _first_entry_if_empty(mask: torch.Tensor) -> torch.Tensor:
    """Keep at least one valid entry: index 0 when nothing else is (noop for blueprints)."""
    fallback = torch.zeros_like(mask)
    fallback[:, 0] = True
    return mask | (fallback & ~mask.any(-1, keepdim=True))


def blueprint_mask(inputs: MaskInputs, slots: torch.Tensor) -> torch.Tensor:
    """Bool [E, B]: blueprints supporting the chosen slot's topology, never ``noop`` unless nothing fits
    (then GERMINATE is unavailable at that slot, so the head is irrelevant and noop is its only entry)."""
    return _first_entry_if_empty(_support_at(inputs.blueprint_support, slots))


def style_mask(inputs: MaskInputs, slots: torch.Tensor) -> torch.Tensor:
    """Bool [E, St]: blend styles supporting the chosen slot's topology (index 0 alone if none does)."""
    return _first_entry_if_empty(_support_at(inputs.style_support, slots))


def value_head_mask(n_envs: int, size: int, device: torch.device) -> torch.Tensor:
    """tempo / alpha_target / alpha_speed / alpha_curve: every entry is always legal."""
    return torch.ones(n_envs, size, dtype=torch.bool, device=device)


def compute_action_masks(inputs: MaskInputs, actions: torch.Tensor) -> dict[str, torch.Tensor]:
    """The masks each head of the joint actions [E, H] was (or would be) sampled under."""
    legality = slot_op_legality(inputs)
    masks = {
        "op": op_mask(inputs, legality),
        "slot": slot_mask(inputs, actions[:, 0], legality),
        "blueprint": blueprint_mask(inputs, actions[:, 1]),
        "style": style_mask(inputs, actions[:, 1]),
    }
    for head in VALUE_HEADS:
        masks[head] = value_head_mask(inputs.n_envs, inputs.head_sizes[head], inputs.device)
    return {head: masks[head] for head in HEADS}


@functools.lru_cache(maxsize=8)
def _relevance_table(device: torch.device) -> torch.Tensor:
    """Bool [N_OPS, H] from RELEVANT_HEADS, built once per device (read-only: callers only index it)."""
    rows = [[head in RELEVANT_HEADS[op] for head in HEADS] for op in Op]
    return torch.tensor(rows, dtype=torch.bool, device=device)


def head_relevance(ops: torch.Tensor) -> torch.Tensor:
    """Bool [..., H]: which heads causally matter for each op (the causal advantage mask)."""
    return _relevance_table(ops.device)[ops.long()]


def canonicalise_actions(inputs: MaskInputs, actions: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Move heads the op ignores onto the first valid entry of their mask (e.g. after ``space.encode``
    of a hand-made action) and return the actions with their masks."""
    actions = actions.clone()
    relevance = head_relevance(actions[:, 0])
    legality = slot_op_legality(inputs)
    slot_m = slot_mask(inputs, actions[:, 0], legality)
    actions[:, 1] = torch.where(relevance[:, 1], actions[:, 1], slot_m.long().argmax(-1))
    masks = compute_action_masks(inputs, actions)
    for i, head in enumerate(HEADS[2:], start=2):
        actions[:, i] = torch.where(relevance[:, i], actions[:, i], masks[head].long().argmax(-1))
    return actions, masks
