"""The ``heuristic`` policy: the hand-written controller a learned one has to beat.

Rules, in priority order, one action per env per step:
1. FOSSILIZE a HOLDING seed whose measured contribution exceeds ``fossilize_min_contribution``;
2. PRUNE a seed old enough (``prune_min_age``) whose contribution is below ``prune_max_contribution``, or
   that has sat in HOLDING ``max_holding_epochs`` without earning fossilization;
3. ADVANCE a seed whenever the lifecycle gates allow (TRAINING -> BLENDING, BLENDING -> HOLDING);
4. GERMINATE into the first dormant slot once validation accuracy has not improved by more than
   ``plateau_eps`` for ``plateau_epochs`` epochs (blueprint and style from preference lists);
5. WAIT.
Every candidate is checked against the shared action masks before it is emitted; a candidate that is not
legal is skipped, and WAIT (always legal) ends the list. The policy never emits an illegal action.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import attrs
import torch
from attrs import validators as v

from esper_core.rl.masks import MaskInputs, canonicalise_actions, compute_action_masks, mask_inputs_from_observations
from esper_core.ops import HEADS, Op
from esper_core.records import DecodedAction, EnvObservation, PolicyContext, PolicyOutput, SlotSummary
from esper_core.specs import PolicySpec
from esper_core.stages import PRUNABLE_STAGES, SeedStage

_CPU = torch.device("cpu")


def _optional_int(minimum: int) -> Any:
    return v.optional([v.instance_of(int), v.ge(minimum)])


def _names(value: Any) -> tuple[str, ...]:
    """A list of names; a bare string would silently become a tuple of characters."""
    if isinstance(value, str):
        raise TypeError(f"expected a list of names, got the string {value!r}; write [{value!r}]")
    return tuple(value)


_name_list = v.deep_iterable(v.instance_of(str))


@attrs.frozen(kw_only=True)
class HeuristicOptions:
    #: Germinate after this many epochs without a validation-accuracy gain above ``plateau_eps``.
    plateau_epochs: int = attrs.field(default=3, validator=[v.instance_of(int), v.ge(1)])
    plateau_eps: float = attrs.field(default=0.002, validator=[v.instance_of((int, float)), v.ge(0.0)])
    #: Blueprints to germinate, best first (names not enabled are skipped; none left: the first valid one).
    blueprint_preference: tuple[str, ...] = attrs.field(
        default=("conv_small", "conv_light", "conv_heavy"), converter=_names, validator=_name_list
    )
    #: Blend styles, best first (same fallback).
    style_preference: tuple[str, ...] = attrs.field(default=("linear_add",), converter=_names, validator=_name_list)
    #: Blending epochs for new seeds; None: the middle entry of the tempo head.
    tempo: int | None = attrs.field(default=None, validator=_optional_int(1))
    #: Alpha target for new seeds; None: the largest entry of the alpha_target head.
    alpha_target: float | None = attrs.field(
        default=None, validator=v.optional([v.instance_of((int, float)), v.gt(0.0), v.le(1.0)])
    )
    #: Fossilize a HOLDING seed whose contribution (accuracy fraction) exceeds this.
    fossilize_min_contribution: float = attrs.field(default=0.01, validator=v.instance_of((int, float)))
    #: Prune a seed whose contribution is below this (a negative number: it measurably hurts) ...
    prune_max_contribution: float = attrs.field(default=-0.005, validator=[v.instance_of((int, float)), v.le(0.0)])
    #: ... once it is at least this old (the lifecycle's own min_prune_age gate applies too).
    prune_min_age: int = attrs.field(default=5, validator=[v.instance_of(int), v.ge(0)])
    #: Prune a HOLDING seed after this many epochs without reaching the fossilize threshold (None: never).
    max_holding_epochs: int | None = attrs.field(default=6, validator=_optional_int(1))
    #: How a prune fades the seed out (alpha_speed and alpha_curve names).
    prune_speed: str = attrs.field(default="medium", validator=v.instance_of(str))
    prune_curve: str = attrs.field(default="linear", validator=v.instance_of(str))

    def __attrs_post_init__(self) -> None:
        if self.prune_max_contribution >= self.fossilize_min_contribution:
            raise ValueError(
                "heuristic options: prune_max_contribution must be below fossilize_min_contribution "
                f"(got {self.prune_max_contribution} >= {self.fossilize_min_contribution})"
            )


@attrs.frozen
class HeuristicState:
    """Per-env plateau tracking: best validation accuracy so far, epochs since it last rose, last epoch seen."""

    best_val_acc: tuple[float | None, ...]
    stale_epochs: tuple[int, ...]
    last_epoch: tuple[int | None, ...]

    @classmethod
    def fresh(cls, n_envs: int) -> "HeuristicState":
        return cls((None,) * n_envs, (0,) * n_envs, (None,) * n_envs)


def _track(best: float | None, stale: int, last: int | None, obs: EnvObservation, eps: float) -> tuple:
    """New (best, stale, last) after seeing ``obs``; an epoch that did not move forward starts afresh."""
    if best is None or last is None or obs.epoch < last:
        return obs.val_acc, 0, obs.epoch
    if obs.epoch == last:  # the same observation again: nothing new to learn from it
        return best, stale, last
    if obs.val_acc > best + eps:
        return obs.val_acc, 0, obs.epoch
    return best, stale + obs.epoch - last, obs.epoch


def _pick(preferred: Sequence[Any], entries: Sequence[Any], valid: list[bool]) -> Any:
    for name in preferred:
        if name in entries and valid[entries.index(name)]:
            return name
    return entries[valid.index(True)]


def _env_inputs(inputs: MaskInputs, env: int) -> MaskInputs:
    rows = slice(env, env + 1)
    return attrs.evolve(
        inputs,
        stage=inputs.stage[rows],
        epochs_in_stage=inputs.epochs_in_stage[rows],
        seed_age=inputs.seed_age[rows],
        alpha_at_target=inputs.alpha_at_target[rows],
        blueprint_support=inputs.blueprint_support[rows],
        style_support=inputs.style_support[rows],
    )


class HeuristicPolicy:
    learns = False

    def __init__(self, options: HeuristicOptions, context: PolicyContext) -> None:
        self.options = options
        self.context = context
        space = context.space
        self._space = space
        self._device = torch.device(context.device)
        self._tempo = self._choose("tempo", options.tempo, space.tempos, space.tempos[len(space.tempos) // 2])
        self._alpha_target = self._choose(
            "alpha_target", options.alpha_target, space.alpha_targets, max(space.alpha_targets)
        )
        self._prune_speed = self._choose("prune_speed", options.prune_speed, space.alpha_speeds, None)
        self._prune_curve = self._choose("prune_curve", options.prune_curve, space.alpha_curves, None)

    @staticmethod
    def _choose(option: str, value: Any, entries: Sequence[Any], default: Any) -> Any:
        if value is None:
            return default
        if value not in entries:
            raise ValueError(
                f"heuristic option {option}={value!r} is not in the action space; choose from {list(entries)}"
            )
        return value

    # ------------------------------------------------------------------------------------ protocol
    def initial_state(self, n_envs: int) -> HeuristicState:
        return HeuristicState.fresh(n_envs)

    def reset_state(self, state: HeuristicState, done: torch.Tensor) -> HeuristicState:
        flags = [bool(d) for d in done.tolist()]
        if state is None or len(state.stale_epochs) != len(flags):
            return HeuristicState.fresh(len(flags))
        return HeuristicState(
            tuple(None if d else b for d, b in zip(flags, state.best_val_acc)),
            tuple(0 if d else s for d, s in zip(flags, state.stale_epochs)),
            tuple(None if d else e for d, e in zip(flags, state.last_epoch)),
        )

    def act(
        self, observations: Sequence[EnvObservation], state: HeuristicState | None, deterministic: bool = False
    ) -> PolicyOutput:
        n_envs = len(observations)
        if state is None or len(state.stale_epochs) != n_envs:
            state = HeuristicState.fresh(n_envs)
        lifecycle = self.context.lifecycle
        # Decide on the CPU (host-side values, no device syncs); emit on the policy's device.
        cpu_inputs = mask_inputs_from_observations(observations, self._space, lifecycle, _CPU)
        rows, best, stale, last = [], [], [], []
        for env, obs in enumerate(observations):
            b, s, e = _track(
                state.best_val_acc[env], state.stale_epochs[env], state.last_epoch[env], obs, self.options.plateau_eps
            )
            row = self._decide(obs, _env_inputs(cpu_inputs, env), plateau=s >= self.options.plateau_epochs)
            if Op(int(row[0])) is Op.GERMINATE:
                s = 0  # wait for the next plateau before growing again
            rows.append(row)
            best.append(b)
            stale.append(s)
            last.append(e)
        actions_cpu = torch.stack(rows)
        cpu_masks = compute_action_masks(cpu_inputs, actions_cpu)
        _assert_legal(actions_cpu, cpu_masks)
        actions = actions_cpu.to(self._device)
        masks = {head: mask.to(self._device) for head, mask in cpu_masks.items()}
        return PolicyOutput(
            actions=actions,
            log_probs=torch.zeros(n_envs, len(HEADS), device=self._device),
            masks=masks,
            value=torch.zeros(n_envs, device=self._device),
            state=HeuristicState(tuple(best), tuple(stale), tuple(last)),
        )

    def update(self, rollout: Any) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Nothing is learned; the options come from the run config."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"the heuristic policy keeps no state; got keys {sorted(state)}")

    # ------------------------------------------------------------------------------------ decisions
    def _decide(self, obs: EnvObservation, inputs: MaskInputs, plateau: bool) -> torch.Tensor:
        """The first legal candidate, as a canonical action row [H] (irrelevant heads on valid entries)."""
        for candidate in self._candidates(obs, inputs, plateau):
            row = self._legal_row(candidate, inputs)
            if row is not None:
                return row
        raise AssertionError("WAIT must always be legal")  # pragma: no cover - the masks guarantee it

    def _candidates(self, obs: EnvObservation, inputs: MaskInputs, plateau: bool) -> Iterator[DecodedAction]:
        opts = self.options
        for slot in obs.slots:
            if slot.stage is SeedStage.HOLDING and _contribution(slot) > opts.fossilize_min_contribution:
                yield DecodedAction(op=Op.FOSSILIZE, slot=slot.name)
        for slot in obs.slots:
            if slot.stage in PRUNABLE_STAGES and slot.seed_age >= opts.prune_min_age and self._unwanted(slot):
                yield DecodedAction(
                    op=Op.PRUNE, slot=slot.name, alpha_speed=self._prune_speed, alpha_curve=self._prune_curve
                )
        for slot in obs.slots:
            if slot.stage in (SeedStage.TRAINING, SeedStage.BLENDING):
                yield DecodedAction(op=Op.ADVANCE, slot=slot.name)
        if plateau:
            for slot in obs.slots:
                if slot.stage is SeedStage.DORMANT:
                    yield self._germination(slot.name, inputs)
        yield DecodedAction(op=Op.WAIT)

    def _unwanted(self, slot: SlotSummary) -> bool:
        opts = self.options
        measured = slot.last_contribution
        if measured is not None and measured < opts.prune_max_contribution:
            return True
        return (
            slot.stage is SeedStage.HOLDING
            and opts.max_holding_epochs is not None
            and slot.epochs_in_stage >= opts.max_holding_epochs
        )

    def _germination(self, slot: str, inputs: MaskInputs) -> DecodedAction:
        """Blueprint and style from the preference lists, among the entries the masks allow at ``slot``."""
        space = self._space
        probe = torch.zeros(1, len(HEADS), dtype=torch.long)
        probe[0, 0], probe[0, 1] = int(Op.GERMINATE), space.slots.index(slot)
        masks = compute_action_masks(inputs, probe)
        blueprint_valid = masks["blueprint"][0].tolist()
        blueprint_valid[0] = False  # noop is never a germination
        style_valid = masks["style"][0].tolist()
        if not any(blueprint_valid):
            return DecodedAction(op=Op.WAIT)  # nothing fits this slot; GERMINATE is masked there anyway
        return DecodedAction(
            op=Op.GERMINATE,
            slot=slot,
            blueprint=_pick(self.options.blueprint_preference, space.blueprints, blueprint_valid),
            style=_pick(self.options.style_preference, space.styles, style_valid),
            tempo=self._tempo,
            alpha_target=self._alpha_target,
        )

    def _legal_row(self, action: DecodedAction, inputs: MaskInputs) -> torch.Tensor | None:
        row, masks = canonicalise_actions(inputs, self._space.encode(action).unsqueeze(0))
        for i, head in enumerate(HEADS):
            if not bool(masks[head][0, row[0, i]]):
                return None
        return row[0]


def _contribution(slot: SlotSummary) -> float:
    return float("-inf") if slot.last_contribution is None else slot.last_contribution


def _assert_legal(actions: torch.Tensor, masks: dict[str, torch.Tensor]) -> None:
    chosen = torch.stack([masks[h].gather(1, actions[:, i : i + 1]).squeeze(1) for i, h in enumerate(HEADS)], -1)
    if not bool(chosen.all()):
        raise AssertionError(f"heuristic built an illegal action: {actions.tolist()}")


SPEC = PolicySpec(
    name="heuristic",
    description="Hand-written rules: germinate on a plateau, advance when allowed, fossilize helpful seeds, "
    "prune harmful or stale ones.",
    factory=HeuristicPolicy,
    options_type=HeuristicOptions,
    learns=False,
)
