"""The ``scripted`` policy: a fixed growth schedule per env, the ground truth a learned controller is read against.

Env ``i`` follows ``plan[i % len(plan)]``: either ``"none"`` (never grow: the static host) or
``"SLOT:BLUEPRINT"``: germinate that blueprint into that slot at epoch ``germinate_at`` (as soon after as the
gates allow), ADVANCE it through TRAINING and BLENDING whenever the gates allow, then FOSSILIZE it from
HOLDING (or keep holding with ``fossilize = false``). Nothing else: no prunes, no other slot.

Why it ships: a sweep over every (slot, blueprint) on one schedule (``benchmarks/blueprint_sweep.py``) says
which blueprints are worth growing on a task; the same plan as a study arm says what the best fixed schedule
reaches, which a learned controller has to beat. Runs with it are ordinary runs, so ``esper eval`` replays
them like any other. Stateless: each decision depends only on the env's observation.
"""

from __future__ import annotations

from typing import Any, Sequence

import attrs
import torch
from attrs import validators as v

from esper_core.ops import HEADS, Op
from esper_core.records import DecodedAction, EnvObservation, PolicyContext, PolicyOutput, SlotSummary
from esper_core.rl.masks import MaskInputs, canonicalise_actions, compute_action_masks, mask_inputs_from_observations
from esper_core.specs import PolicySpec
from esper_core.stages import SeedStage
from esper_core.validators import HELP, SettingError
from esper_policies.non_learning import NonLearningPolicy

NO_GROWTH = "none"
_CPU = torch.device("cpu")


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"expected a list of plan entries, got the string {value!r}; write [{value!r}]")
    return tuple(value)


def _help(text: str) -> dict[str, str]:
    return {HELP: text}


@attrs.frozen(kw_only=True)
class ScriptedOptions:
    plan: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=v.deep_iterable(v.instance_of(str)),
        metadata=_help('per env, cycled: "SLOT:BLUEPRINT" (grow that blueprint there) or "none"; empty: no env grows'),
    )
    germinate_at: int = attrs.field(
        default=2, validator=[v.instance_of(int), v.ge(0)], metadata=_help("epoch from which to germinate")
    )
    style: str = attrs.field(default="linear_add", validator=v.instance_of(str), metadata=_help("blend style"))
    tempo: int | None = attrs.field(
        default=None, validator=v.optional([v.instance_of(int), v.ge(1)]),
        metadata=_help("blending epochs; unset: the middle entry of the tempo head"),
    )
    alpha_target: float | None = attrs.field(
        default=None, validator=v.optional([v.instance_of((int, float)), v.gt(0.0), v.le(1.0)]),
        metadata=_help("alpha target; unset: the largest entry of the alpha_target head"),
    )
    fossilize: bool = attrs.field(
        default=True, validator=v.instance_of(bool), metadata=_help("fossilize from HOLDING (false: hold to the end)")
    )


@attrs.frozen
class PlanEntry:
    slot: str | None  # None: never grow
    blueprint: str | None


def parse_plan(plan: Sequence[str], space: Any) -> list[PlanEntry]:
    """Plan entries checked against the action space (slots, enabled blueprints, topologies)."""
    support = space.blueprint_support()
    entries = []
    for text in plan:
        if text == NO_GROWTH:
            entries.append(PlanEntry(None, None))
            continue
        slot, sep, blueprint = text.partition(":")
        if not sep or slot not in space.slots or blueprint not in space.blueprints or blueprint == "noop":
            raise SettingError(
                "policy.options", "plan",
                f"each entry must be {NO_GROWTH!r} or 'SLOT:BLUEPRINT' with a slot of {list(space.slots)} and an "
                f"enabled blueprint of {[b for b in space.blueprints if b != 'noop']}", text,
            )
        if not bool(support[space.slots.index(slot), space.blueprints.index(blueprint)]):
            raise SettingError("policy.options", "plan", f"blueprint {blueprint!r} does not fit slot {slot!r}", text)
        entries.append(PlanEntry(slot, blueprint))
    return entries


class ScriptedPolicy(NonLearningPolicy):
    def __init__(self, options: ScriptedOptions, context: PolicyContext) -> None:
        super().__init__(context)
        space = context.space
        self.options = options
        self.plan = parse_plan(options.plan, space)
        if options.style not in space.styles:
            raise SettingError("policy.options", "style", f"not an enabled blend style; choose from {list(space.styles)}", options.style)
        self._tempo = options.tempo if options.tempo is not None else space.tempos[len(space.tempos) // 2]
        self._alpha_target = options.alpha_target if options.alpha_target is not None else max(space.alpha_targets)
        if self._tempo not in space.tempos or self._alpha_target not in space.alpha_targets:
            raise SettingError(
                "policy.options", "tempo / alpha_target",
                f"not in the action space (tempos {list(space.tempos)}, alpha_targets {list(space.alpha_targets)})",
                (self._tempo, self._alpha_target),
            )

    def entry(self, env: int) -> PlanEntry:
        return self.plan[env % len(self.plan)] if self.plan else PlanEntry(None, None)

    def act(self, observations: Sequence[EnvObservation], state: Any, deterministic: bool = False) -> PolicyOutput:
        inputs = mask_inputs_from_observations(observations, self._space, self._lifecycle, _CPU)
        rows = torch.stack([self._decide(obs, self.entry(e), inputs.env_rows(e)) for e, obs in enumerate(observations)])
        masks = compute_action_masks(inputs, rows)
        n_envs = len(observations)
        return PolicyOutput(
            actions=rows.to(self._device),
            log_probs=torch.zeros(n_envs, len(HEADS), device=self._device),
            masks={head: mask.to(self._device) for head, mask in masks.items()},
            value=self.zero_values(n_envs),
            state=state,
        )

    def _decide(self, obs: EnvObservation, entry: PlanEntry, inputs: MaskInputs) -> torch.Tensor:
        for candidate in self._candidates(obs, entry):
            row, masks = canonicalise_actions(inputs, self._space.encode(candidate).unsqueeze(0))
            if all(bool(masks[head][0, row[0, i]]) for i, head in enumerate(HEADS)):
                return row[0]
        raise AssertionError("WAIT must always be legal")  # pragma: no cover - the masks guarantee it

    def _candidates(self, obs: EnvObservation, entry: PlanEntry) -> list[DecodedAction]:
        slot: SlotSummary | None = next((s for s in obs.slots if s.name == entry.slot), None)
        wait = DecodedAction(op=Op.WAIT)
        if slot is None:
            return [wait]
        if slot.stage is SeedStage.DORMANT and obs.epoch >= self.options.germinate_at:
            return [
                DecodedAction(op=Op.GERMINATE, slot=slot.name, blueprint=entry.blueprint, style=self.options.style,
                              tempo=self._tempo, alpha_target=self._alpha_target),
                wait,
            ]
        if slot.stage in (SeedStage.TRAINING, SeedStage.BLENDING):
            return [DecodedAction(op=Op.ADVANCE, slot=slot.name), wait]
        if slot.stage is SeedStage.HOLDING and self.options.fossilize:
            return [DecodedAction(op=Op.FOSSILIZE, slot=slot.name), wait]
        return [wait]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"the scripted policy has no state; got keys {sorted(state)}")


SPEC = PolicySpec(
    name="scripted",
    description="A fixed schedule per env (policy.options.plan): germinate a given blueprint in a given slot at "
    "a given epoch, blend, fossilize; the ground truth for blueprint sweeps and a fixed-schedule baseline.",
    factory=ScriptedPolicy,
    options_type=ScriptedOptions,
    learns=False,
)
