"""SeedSlot: the module a host calls at a slot point. Holds at most one seed and its stage-dependent forward.

Forward by stage:
- DORMANT / EMBARGOED / RESETTING (and PRUNED once alpha is 0): host features pass through unchanged.
- TRAINING: gradient isolation. The seed reads *detached* host features; the output is a copy of the host
  features whose backward hands the incoming gradient unchanged to the host and also to the seed output.
  The host's forward values and gradients are therefore bit-identical to having no seed, while the seed
  learns from the task gradient at that point.
- BLENDING / HOLDING / PRUNED (fading) / FOSSILIZED: ``blend(h, seed(h), alpha)`` with ``h`` attached, so the
  host again receives gradient through the slot. ``alpha`` is a 0-dim buffer updated in place: the graph
  does not change while alpha moves. ``alpha_override`` swaps in a per-sample [B] alpha (counterfactuals).

The Python-side lifecycle state (stage, schedule, counters) lives here too; ``MorphogeneticModel`` decides
whether an op is allowed and calls the mutators below, which only check the transition table.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from esper_core.growth.alpha import AlphaSchedule
from esper_core.config.sections import LifecycleConfig
from esper_core.growth.lifecycle import check_transition
from esper_core.records import SlotPoint, SlotSummary, StageTransition
from esper_core.stages import SEED_PRESENT_STAGES, SeedStage

S = SeedStage

#: Stages whose forward is the identity whatever the seed.
PASSTHROUGH_STAGES: frozenset[SeedStage] = frozenset({S.DORMANT, S.GERMINATED, S.EMBARGOED, S.RESETTING})

#: Stages in which a seed reads detached host features unless its host declares otherwise
#: (``seed_isolation``): isolation ends with TRAINING, so from BLENDING on the host co-adapts through the seed.
DEFAULT_SEED_ISOLATION: frozenset[SeedStage] = frozenset({S.TRAINING})
#: What a host may declare: TRAINING always (invariant 9), optionally the blending stages after it.
ISOLABLE_STAGES: frozenset[SeedStage] = frozenset({S.TRAINING, S.BLENDING, S.HOLDING})


def check_seed_isolation(stages: object, host: str) -> frozenset[SeedStage]:
    """A host's declared ``seed_isolation`` as a frozenset, or a ValueError saying what is allowed."""
    try:
        declared = frozenset(SeedStage(stage) for stage in stages)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        declared = frozenset()
    if S.TRAINING not in declared or not declared <= ISOLABLE_STAGES:
        allowed = sorted(stage.name for stage in ISOLABLE_STAGES)
        raise ValueError(
            f"host {host!r}: seed_isolation must contain TRAINING and only stages of {allowed}; got {stages!r}"
        )
    return declared


class _IsolatedSeedOutput(torch.autograd.Function):
    """Forward: an exact copy of ``h``. Backward: the incoming gradient goes unchanged to ``h``; the seed
    output gets it plus a proximal pull ``(proximal / s.numel()) * s``.

    Why the pull: the seed's output never reaches the loss in TRAINING, so the gradient it sees is the
    linearisation of the loss at ``h`` and has no minimum: followed alone, the seed's output grows without
    bound (measured: |s| went from 0 to ~600x |h| in 140 SGD steps) and blows up the loss once blended.
    With the pull the seed minimises ``<g, s> + proximal/2 * mean(s^2)``: a bounded, Newton-like step in
    function space (``s* = -numel(s) g / proximal``) whose direction is still the task gradient. Scaling by
    the element count keeps the curvature it adds small enough for the seed's SGD step at any feature size. The host's values
    and gradients are untouched either way.

    A copy (not ``h + (s - s.detach())``) keeps the bits exact even for -0.0 and when the seed emits inf/NaN.
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, s: torch.Tensor, proximal: float) -> torch.Tensor:
        ctx.seed_dtype = s.dtype
        ctx.proximal = proximal
        ctx.save_for_backward(s.detach() if proximal > 0.0 else s.new_empty(0))
        return h.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        grad_h = grad if ctx.needs_input_grad[0] else None
        grad_s = None
        if ctx.needs_input_grad[1]:
            grad_s = grad.to(ctx.seed_dtype)
            if ctx.proximal > 0.0:
                (s,) = ctx.saved_tensors
                grad_s = grad_s + (ctx.proximal / s.numel()) * s
        return grad_h, grad_s, None


def isolated_seed_output(h: torch.Tensor, s: torch.Tensor, proximal: float = 0.0) -> torch.Tensor:
    """Host features unchanged in value and gradient; ``s`` receives the gradient arriving at the slot
    (plus the proximal pull, see ``_IsolatedSeedOutput``)."""
    if h.shape != s.shape:
        raise ValueError(f"seed output shape {tuple(s.shape)} differs from host features {tuple(h.shape)}")
    if proximal < 0.0:
        raise ValueError(f"proximal must be >= 0; got {proximal}")
    return _IsolatedSeedOutput.apply(h, s, float(proximal))


class SeedSlot(nn.Module):
    """One slot point of a host: at most one seed, its blend style, its alpha and its lifecycle state."""

    def __init__(
        self,
        point: SlotPoint,
        device: torch.device | str | None = None,
        proximal: float = 0.0,
        isolation: frozenset[SeedStage] = DEFAULT_SEED_ISOLATION,
    ) -> None:
        super().__init__()
        self.point = point
        self.isolation = isolation  # stages whose seed reads detached features (the host's seed_isolation)
        self.proximal = proximal  # TrainingConfig.seed_proximal: bounds what a TRAINING seed learns
        self.seed: nn.Module | None = None
        self.blend: nn.Module | None = None
        self.register_buffer("alpha", torch.zeros((), device=device))
        self.stage = S.DORMANT
        self.blueprint: str | None = None
        self.style: str | None = None
        self.tempo = 0
        self.germination_target = 0.0
        self.schedule = AlphaSchedule.constant(0.0)
        self.epochs_in_stage = 0
        self.seed_age = 0
        self.embargo_left = 0
        self.last_contribution: float | None = None
        self.seed_params = 0
        self._alpha_override: torch.Tensor | None = None

    @property
    def name(self) -> str:
        return self.point.name

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.passes_through():
            return h
        return self.combine(h, self.seed(self.seed_input(h)))

    def seed_input(self, h: torch.Tensor) -> torch.Tensor:
        """What the seed reads: detached host features while it is isolated (TRAINING, and any later stage
        the host's ``seed_isolation`` declares), else the features."""
        return h.detach() if self.stage in self.isolation else h

    def combine(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The slot's output from the host features ``h`` and the seed's output ``s`` (computed from
        ``seed_input(h)``, here or by a fused group for several envs at once)."""
        if self.stage == S.TRAINING:
            return isolated_seed_output(h, s, self.proximal)
        return self.blend(h, s, self.blend_alpha())

    def blend_alpha(self) -> torch.Tensor:
        """The alpha the blend uses now: the 0-dim buffer, or the per-sample override inside ``alpha_override``."""
        return self.alpha if self._alpha_override is None else self._alpha_override

    def passes_through(self) -> bool:
        """Whether ``forward`` returns its input unchanged right now, so a caller may skip it: no seed, a
        stage that does not blend, a TRAINING seed with nothing to learn (no grad), a finished fade-out."""
        stage = self.stage
        if self.seed is None or stage in PASSTHROUGH_STAGES:
            return True
        if stage == S.TRAINING:
            return not torch.is_grad_enabled()
        return stage == S.PRUNED and self.schedule.done and self.schedule.target == 0.0

    @contextlib.contextmanager
    def alpha_override(self, alpha: torch.Tensor) -> Iterator[None]:
        """Use a per-sample alpha ``[B]`` (on the features' device) inside the block, e.g. to switch the
        seed off for half of a duplicated batch. Ignored in stages that do not blend."""
        if alpha.dim() != 1:
            raise ValueError(f"alpha_override needs a [B] tensor; got shape {tuple(alpha.shape)}")
        previous = self._alpha_override
        self._alpha_override = alpha
        try:
            yield
        finally:
            self._alpha_override = previous

    # ------------------------------------------------------------------------------------------- state
    @property
    def has_seed(self) -> bool:
        return self.seed is not None

    def seed_parameters(self) -> list[nn.Parameter]:
        """The seed's and its blend style's parameters (what a seed optimiser trains)."""
        modules = [m for m in (self.seed, self.blend) if m is not None]
        return [p for m in modules for p in m.parameters()]

    def alpha_at_target(self) -> bool:
        if self.stage == S.TRAINING:
            return False
        return self.schedule.done

    def alpha_target(self) -> float:
        return self.germination_target if self.stage == S.TRAINING else self.schedule.target

    def summary(self, grad_norm_ratio: float = 0.0) -> SlotSummary:
        return SlotSummary(
            name=self.name,
            stage=self.stage,
            blueprint=self.blueprint,
            style=self.style,
            alpha=self.schedule.value,
            alpha_target=self.alpha_target(),
            alpha_at_target=self.alpha_at_target(),
            epochs_in_stage=self.epochs_in_stage,
            seed_age=self.seed_age,
            embargo_left=self.embargo_left,
            seed_params=self.seed_params,
            last_contribution=self.last_contribution,
            grad_norm_ratio=grad_norm_ratio,
        )

    # ---------------------------------------------------------------------------------------- mutators
    def move_to(self, stage: SeedStage, reason: str) -> StageTransition:
        """Change stage through the transition table (raises ``IllegalTransition`` otherwise)."""
        check_transition(self.name, self.stage, stage)
        transition = StageTransition(self.name, self.stage, stage, reason)
        self.stage = stage
        self.epochs_in_stage = 0
        return transition

    def set_schedule(self, schedule: AlphaSchedule) -> None:
        """Adopt a schedule and write its current value into the alpha buffer (in place, no sync)."""
        self.schedule = schedule
        self.alpha.fill_(schedule.value)

    def install(
        self, seed: nn.Module, blend: nn.Module, blueprint: str, style: str, tempo: int, target: float
    ) -> None:
        self.seed = seed
        self.blend = blend
        self.blueprint, self.style = blueprint, style
        self.tempo, self.germination_target = tempo, target
        self.seed_age = 0
        self.last_contribution = None
        self.seed_params = sum(p.numel() for p in self.seed_parameters())
        self.set_schedule(AlphaSchedule.constant(0.0))

    def release(self) -> None:
        """Drop the seed module (its memory goes with it) and forget everything about it."""
        self.seed = None
        self.blend = None
        self.blueprint = self.style = None
        self.tempo, self.germination_target = 0, 0.0
        self.seed_age = 0
        self.seed_params = 0
        self.last_contribution = None
        self.set_schedule(AlphaSchedule.constant(0.0))

    def tick(self, lifecycle: LifecycleConfig) -> tuple[list[StageTransition], bool]:
        """One epoch passed: counters, alpha schedule, automatic transitions.

        Returns the transitions and whether the seed module was released (its optimiser must go too).
        A stage entered here starts counting at the next epoch; zero-length stages are passed through.
        """
        self.epochs_in_stage += 1
        if self.stage in SEED_PRESENT_STAGES:
            self.seed_age += 1
        if self.stage in (S.BLENDING, S.PRUNED):
            self.set_schedule(self.schedule.advanced())
        transitions: list[StageTransition] = []
        released = False
        if self.stage == S.EMBARGOED:
            self.embargo_left = max(0, self.embargo_left - 1)
        if self.stage == S.PRUNED and self.schedule.done:
            transitions.append(self.move_to(S.EMBARGOED, "alpha faded to 0"))
            self.release()
            released = True
            self.embargo_left = lifecycle.embargo_epochs
        if self.stage == S.EMBARGOED and self.embargo_left == 0:
            transitions.append(self.move_to(S.RESETTING, "embargo over"))
        if self.stage == S.RESETTING and self.epochs_in_stage >= lifecycle.resetting_epochs:
            transitions.append(self.move_to(S.DORMANT, "slot reset"))
        return transitions, released

    # ---------------------------------------------------------------------------------- checkpointing
    def record(self) -> dict[str, Any]:
        """JSON-able lifecycle state (the tensors live in the state dict)."""
        return {
            "stage": self.stage.name,
            "blueprint": self.blueprint,
            "style": self.style,
            "tempo": self.tempo,
            "germination_target": self.germination_target,
            "schedule": {
                "start": self.schedule.start,
                "target": self.schedule.target,
                "epochs": self.schedule.epochs,
                "curve": self.schedule.curve,
                "step": self.schedule.step,
            },
            "epochs_in_stage": self.epochs_in_stage,
            "seed_age": self.seed_age,
            "embargo_left": self.embargo_left,
            "last_contribution": self.last_contribution,
            "has_seed": self.has_seed,
            "seed_trainable": any(p.requires_grad for p in self.seed_parameters()),
        }

    def restore_record(self, record: dict[str, Any], seed: nn.Module | None, blend: nn.Module | None) -> None:
        """Inverse of ``record`` given freshly built modules (None when the record holds no seed)."""
        self.seed, self.blend = seed, blend
        self.stage = S[record["stage"]]
        self.blueprint, self.style = record["blueprint"], record["style"]
        self.tempo = int(record["tempo"])
        self.germination_target = float(record["germination_target"])
        self.epochs_in_stage = int(record["epochs_in_stage"])
        self.seed_age = int(record["seed_age"])
        self.embargo_left = int(record["embargo_left"])
        self.last_contribution = record["last_contribution"]
        self.seed_params = sum(p.numel() for p in self.seed_parameters())
        for p in self.seed_parameters():
            p.requires_grad_(bool(record["seed_trainable"]))
        self.set_schedule(AlphaSchedule(**record["schedule"]))
