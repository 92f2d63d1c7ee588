"""The ``heuristic`` policy: the hand-written controller a learned one has to beat.

Rules, in priority order, one action per env per step:
1. FOSSILIZE a HOLDING seed whose measured contribution exceeds ``fossilize_min_contribution``;
2. PRUNE a seed old enough (``prune_min_age``) whose contribution is below ``prune_max_contribution``, or
   that has sat in HOLDING ``max_holding_epochs`` without earning fossilization;
3. ADVANCE a seed whenever the lifecycle gates allow (TRAINING -> BLENDING, BLENDING -> HOLDING);
4. GERMINATE into the first dormant slot once validation accuracy has not improved by more than
   ``plateau_eps`` for ``plateau_epochs`` epochs;
5. WAIT.
Which blueprint: by default every blueprint in the action space takes its turn (the valid one germinated
least often so far in the run, ties in action-space order), so a third-party blueprint is tried as
often as a built-in; ``blueprint_preference`` lists favourites instead (best first). The counts are the
policy's only state across episodes (``state_dict``), so a resumed run picks exactly as the original.
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
from esper_core.validators import HELP, IncompatibleSettings

_CPU = torch.device("cpu")


def _optional_int(minimum: int) -> Any:
    return v.optional([v.instance_of(int), v.ge(minimum)])


def _names(value: Any) -> tuple[str, ...]:
    """A list of names; a bare string would silently become a tuple of characters."""
    if isinstance(value, str):
        raise TypeError(f"expected a list of names, got the string {value!r}; write [{value!r}]")
    return tuple(value)


_name_list = v.deep_iterable(v.instance_of(str))


def _help(text: str) -> dict[str, str]:
    return {HELP: text}


@attrs.frozen(kw_only=True)
class HeuristicOptions:
    plateau_epochs: int = attrs.field(
        default=3, validator=[v.instance_of(int), v.ge(1)],
        metadata=_help("germinate after this many epochs without a validation-accuracy gain above plateau_eps"),
    )
    plateau_eps: float = attrs.field(
        default=0.002, validator=[v.instance_of((int, float)), v.ge(0.0)],
        metadata=_help("smallest validation-accuracy gain (fraction) that counts as progress"),
    )
    blueprint_preference: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=_name_list,
        metadata=_help("blueprints to germinate, best first (names not enabled are skipped); empty: every blueprint "
                       "of the action space in turn, the least germinated valid one first"),
    )
    style_preference: tuple[str, ...] = attrs.field(
        default=("linear_add",), converter=_names, validator=_name_list,
        metadata=_help("blend styles, best first (names not enabled are skipped; none left: the first valid one)"),
    )
    tempo: int | None = attrs.field(
        default=None, validator=_optional_int(1),
        metadata=_help("blending epochs for new seeds; unset: the middle entry of the tempo head"),
    )
    alpha_target: float | None = attrs.field(
        default=None, validator=v.optional([v.instance_of((int, float)), v.gt(0.0), v.le(1.0)]),
        metadata=_help("alpha target for new seeds; unset: the largest entry of the alpha_target head"),
    )
    fossilize_min_contribution: float = attrs.field(
        default=0.01, validator=v.instance_of((int, float)),
        metadata=_help("fossilize a HOLDING seed whose contribution (accuracy fraction) exceeds this"),
    )
    prune_max_contribution: float = attrs.field(
        default=-0.005, validator=[v.instance_of((int, float)), v.le(0.0)],
        metadata=_help("prune a seed whose contribution is below this (negative: it measurably hurts) once old enough"),
    )
    prune_min_age: int = attrs.field(
        default=5, validator=[v.instance_of(int), v.ge(0)],
        metadata=_help("seed age before the heuristic prunes (the lifecycle's own min_prune_age applies too)"),
    )
    max_holding_epochs: int | None = attrs.field(
        default=6, validator=_optional_int(1),
        metadata=_help("prune a HOLDING seed after this many epochs without reaching the fossilize threshold; unset: never"),
    )
    prune_speed: str = attrs.field(
        default="medium", validator=v.instance_of(str), metadata=_help("alpha_speed name with which a prune fades the seed out")
    )
    prune_curve: str = attrs.field(
        default="linear", validator=v.instance_of(str), metadata=_help("alpha_curve name with which a prune fades the seed out")
    )

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


#: The config key that lists an option's choices, where the user can set it (the alpha speeds and curves
#: of the action space are fixed).
_ACTION_TABLES = {"tempo": "actions.tempos", "alpha_target": "actions.alpha_targets"}


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
        self._germinations: dict[str, int] = {}  # blueprint -> times germinated in this run (its turn order)

    @staticmethod
    def _choose(option: str, value: Any, entries: Sequence[Any], default: Any) -> Any:
        """``value`` (or ``default`` when unset); a value the action space lacks is the user's settings
        disagreeing with each other, so ``IncompatibleSettings`` (not a fault of this policy)."""
        if value is None:
            return default
        if value not in entries:
            table = _ACTION_TABLES.get(option)
            widen = f", or add it to {table}" if table else ""
            raise IncompatibleSettings(
                f"heuristic policy option policy.options.{option}={value!r} is not in the action space; "
                f"choose from {list(entries)}{widen}"
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
            row = self._decide(obs, cpu_inputs.env_rows(env), plateau=s >= self.options.plateau_epochs)
            if Op(int(row[0])) is Op.GERMINATE:
                s = 0  # wait for the next plateau before growing again
                name = self._space.blueprints[int(row[HEADS.index("blueprint")])]
                self._germinations[name] = self._germinations.get(name, 0) + 1
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
        """Nothing is learned; only how often each blueprint was germinated (whose turn is next)."""
        return {"germinations": dict(self._germinations)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = sorted(set(state) - {"germinations"})
        if unknown:
            raise ValueError(f"the heuristic policy keeps only 'germinations' (blueprint counts); got keys {unknown}")
        counts = state.get("germinations", {})  # absent in checkpoints written before the counts existed
        self._germinations = {str(name): int(count) for name, count in counts.items()}

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
        """Blueprint (the preference list, else whose turn it is) and style (the preference list), among the
        entries the masks allow at ``slot``."""
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
            blueprint=self._blueprint(space.blueprints, blueprint_valid),
            style=_pick(self.options.style_preference, space.styles, style_valid),
            tempo=self._tempo,
            alpha_target=self._alpha_target,
        )

    def _blueprint(self, entries: Sequence[str], valid: list[bool]) -> str:
        if self.options.blueprint_preference:
            return _pick(self.options.blueprint_preference, entries, valid)
        candidates = [name for name, ok in zip(entries, valid) if ok]
        return min(candidates, key=lambda name: (self._germinations.get(name, 0), entries.index(name)))

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
    description="Hand-written rules: germinate on a plateau (each blueprint in turn), advance when allowed, "
    "fossilize helpful seeds, prune harmful or stale ones.",
    factory=HeuristicPolicy,
    options_type=HeuristicOptions,
    learns=False,
)
