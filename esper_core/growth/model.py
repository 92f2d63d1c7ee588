"""MorphogeneticModel: a host with a SeedSlot at every slot point, the lifecycle executor and its optimiser.

Every op checks all of its gates (``esper_core.growth.lifecycle``) and arguments before it changes anything, so an
illegal call raises ``LifecycleError`` and leaves the model exactly as it was: the executor is the second
line of defence behind the action masks. Each op returns the ``StageTransition``s it caused.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Mapping

import attrs
import torch
from torch import nn
from torch.nn.utils import get_total_norm

from esper_core.growth.alpha import AlphaSchedule, check_curve
from esper_core.config.sections import LifecycleConfig, TrainingConfig
from esper_core.growth.optimizer import GrowthOptimizer
from esper_core.host_contract import HostContractError, structural_problems
from esper_core.growth.lifecycle import (
    BadOpArgument,
    GateClosed,
    SeedShapeError,
    germination_refusal,
    op_refusal,
)
from esper_core.ops import ALPHA_CURVES, ALPHA_SPEEDS, Op
from esper_core.records import DecodedAction, SlotSummary, StageTransition
from esper_core.growth.slot import DEFAULT_SEED_ISOLATION, SeedSlot, check_seed_isolation
from esper_core.specs import BlendStyleSpec, BlueprintSpec
from esper_core.stages import LIVE_SEED_STAGES, PRUNABLE_STAGES, SeedStage

S = SeedStage
MORPHOLOGY_FORMAT = 1
#: Failures of the machine, not of a plugin: a germination that runs out of memory (a GPU shared with other
#: runs) re-raises them instead of blaming the blueprint or blend style, which would disable it for the rest
#: of the run (and, through checkpoints, of every resume).
RESOURCE_ERRORS: tuple[type[BaseException], ...] = (torch.OutOfMemoryError, MemoryError)


@attrs.frozen
class Placement:
    """Where the host's tensors live; new seeds and evaluation inputs follow it."""

    device: torch.device
    dtype: torch.dtype
    memory_format: torch.memory_format


def memory_format_of(tensor: torch.Tensor) -> torch.memory_format:
    """channels_last for a 4-D tensor laid out that way (and not plainly contiguous as well), else contiguous."""
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def host_placement(module: nn.Module) -> Placement:
    """Device and dtype of the first floating parameter; channels_last when a 4-D weight uses it."""
    floating = [p for p in module.parameters() if p.is_floating_point()]
    if not floating:
        raise ValueError("the host has no floating-point parameters; cannot tell its device and dtype")
    channels_last = any(memory_format_of(p) == torch.channels_last for p in floating)
    return Placement(floating[0].device, floating[0].dtype, torch.channels_last if channels_last else torch.contiguous_format)


def _placed(module: nn.Module, where: Placement) -> nn.Module:
    """A freshly built seed or blend moved onto the host's device, dtype and memory format."""
    module = module.to(device=where.device, dtype=where.dtype)
    if where.memory_format == torch.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


def _unit(value: Any, what: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise BadOpArgument(f"{what} must be a number in [0, 1]; got {value!r}") from None
    if not 0.0 <= result <= 1.0 or math.isnan(result):
        raise BadOpArgument(f"{what} must be in [0, 1]; got {value!r}")
    return result


def _tempo(value: Any) -> int:
    try:
        tempo = operator.index(value)
    except TypeError:
        tempo = -1
    if isinstance(value, bool) or tempo < 0:
        raise BadOpArgument(f"GERMINATE tempo must be an int >= 0 (blending epochs); got {value!r}")
    return tempo


def _speed_epochs(speed: Any, what: str) -> int:
    if speed not in ALPHA_SPEEDS:
        raise BadOpArgument(f"{what}: unknown alpha speed {speed!r}; expected one of {list(ALPHA_SPEEDS)}")
    return ALPHA_SPEEDS[speed]


def _curve(curve: Any, what: str) -> str:
    if curve not in ALPHA_CURVES:
        raise BadOpArgument(f"{what}: unknown alpha curve {curve!r}; expected one of {list(ALPHA_CURVES)}")
    return curve


class MorphogeneticModel(nn.Module):
    """A host network that grows: installs the slots, executes lifecycle ops, owns the ``GrowthOptimizer``."""

    def __init__(
        self,
        host: nn.Module,
        blueprints: Mapping[str, BlueprintSpec],
        styles: Mapping[str, BlendStyleSpec],
        lifecycle: LifecycleConfig,
        training: TrainingConfig,
        *,
        nesterov: bool = False,
    ) -> None:
        super().__init__()
        try:
            check_curve(lifecycle.germinate_curve)
        except ValueError as error:
            raise ValueError(f"lifecycle.germinate_curve: {error}") from None
        self.host = host
        self.blueprints = dict(blueprints)
        self.styles = dict(styles)
        self.lifecycle = lifecycle
        self.training_config = training
        self.nesterov = nesterov
        self.topology: str = getattr(host, "topology", "cnn")
        problems = structural_problems(host)
        if problems:
            raise HostContractError(type(host).__name__, problems)
        points = tuple(host.slot_points())
        device = host_placement(host).device
        # Where seeds stay gradient-isolated is the host's declaration (e.g. a topology whose host should
        # co-adapt through its seeds), never a decision of the core.
        isolation = check_seed_isolation(getattr(host, "seed_isolation", DEFAULT_SEED_ISOLATION), type(host).__name__)
        for point in points:
            host.slots[point.name] = SeedSlot(point, device=device, proximal=training.seed_proximal, isolation=isolation)
        self._slot_names = tuple(p.name for p in points)
        self._base_param_count = sum(p.numel() for p in self._base_host_parameters())
        self._fossil_order: list[str] = []
        self.optimizer = GrowthOptimizer(self._base_host_parameters(), training, nesterov=nesterov)
        self._grad_ratio_sum: torch.Tensor | None = None
        self._grad_ratio_batches = 0
        self._epoch_grad_ratio: torch.Tensor | None = None
        self._epoch_grad_ratio_values: list[float] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.host(x)

    # ------------------------------------------------------------------------------------------ access
    @property
    def slot_names(self) -> tuple[str, ...]:
        return self._slot_names

    @property
    def slots(self) -> dict[str, SeedSlot]:
        return {name: self.host.slots[name] for name in self._slot_names}

    def slot(self, name: str) -> SeedSlot:
        if name not in self._slot_names:
            raise BadOpArgument(f"unknown slot {name!r}; this host's slots are {list(self._slot_names)}")
        return self.host.slots[name]

    def placement(self) -> Placement:
        return host_placement(self.host)

    def _base_host_parameters(self) -> list[nn.Parameter]:
        seed_ids = {id(p) for s in self.slots.values() for p in s.seed_parameters()}
        return [p for p in self.host.parameters() if id(p) not in seed_ids]

    def host_param_count(self) -> int:
        """The host's own parameters plus every fossilized seed (now permanent capacity)."""
        return self._base_param_count + sum(s.seed_params for s in self.slots.values() if s.stage == S.FOSSILIZED)

    def seed_param_count(self) -> int:
        """Parameters of live (not yet permanent) seeds, blend style parameters included."""
        return sum(s.seed_params for s in self.slots.values() if s.stage in LIVE_SEED_STAGES)

    # ------------------------------------------------------------------------------------------ gates
    def _gate(self, op: Op, slot: SeedSlot) -> None:
        reason = op_refusal(op, slot.summary(), self.lifecycle)
        if reason is not None:
            raise GateClosed(op, slot.name, slot.stage, reason)

    def _summaries(self) -> tuple[SlotSummary, ...]:
        return tuple(s.summary() for s in self.slots.values())

    # -------------------------------------------------------------------------------------------- ops
    def germinate(
        self, slot: str, blueprint: str, style: str, tempo: int, alpha_target: float
    ) -> list[StageTransition]:
        """DORMANT -> GERMINATED -> TRAINING: build the seed on the host's device, check shapes, isolate it."""
        target_slot = self.slot(slot)
        self._gate(Op.GERMINATE, target_slot)
        refusal = germination_refusal(self._summaries(), self.lifecycle)
        if refusal is not None:
            raise GateClosed(Op.GERMINATE, slot, target_slot.stage, refusal)
        blueprint_spec = self._blueprint_spec(blueprint)
        style_spec = self._style_spec(style)
        tempo = _tempo(tempo)
        target = _unit(alpha_target, "GERMINATE alpha_target")
        seed, blend = self._build_seed(target_slot, blueprint_spec, style_spec)
        transitions = [target_slot.move_to(S.GERMINATED, f"germinate {blueprint} with {style}")]
        target_slot.install(seed, blend, blueprint, style, tempo, target)
        transitions.append(target_slot.move_to(S.TRAINING, "seed built and shape-checked"))
        self.optimizer.add_seed(slot, target_slot.seed_parameters())
        return transitions

    def advance(self, slot: str) -> list[StageTransition]:
        """TRAINING -> BLENDING (alpha 0 -> germination target over tempo epochs) or BLENDING -> HOLDING."""
        target_slot = self.slot(slot)
        self._gate(Op.ADVANCE, target_slot)
        if target_slot.stage == S.TRAINING:
            transition = target_slot.move_to(S.BLENDING, "min_training_epochs reached")
            target_slot.set_schedule(
                AlphaSchedule(
                    start=0.0,
                    target=target_slot.germination_target,
                    epochs=target_slot.tempo,
                    curve=self.lifecycle.germinate_curve,
                )
            )
            return [transition]
        return [target_slot.move_to(S.HOLDING, "alpha at target")]

    def set_alpha_target(
        self, slot: str, target: float, speed: str = "instant", curve: str = "linear"
    ) -> list[StageTransition]:
        """Move alpha from where it is to ``target`` over ``ALPHA_SPEEDS[speed]`` epochs (HOLDING -> BLENDING)."""
        target_slot = self.slot(slot)
        self._gate(Op.SET_ALPHA_TARGET, target_slot)
        value = _unit(target, "SET_ALPHA_TARGET target")
        epochs = _speed_epochs(speed, "SET_ALPHA_TARGET")
        curve = _curve(curve, "SET_ALPHA_TARGET")
        transitions = []
        if target_slot.stage == S.HOLDING:
            transitions.append(target_slot.move_to(S.BLENDING, f"retarget to {value:g}"))
        target_slot.set_schedule(target_slot.schedule.retargeted(value, epochs, curve))
        return transitions

    def prune(self, slot: str, speed: str = "instant", curve: str = "linear") -> list[StageTransition]:
        """-> PRUNED: the seed stops learning (its optimiser is dropped) and alpha fades to 0."""
        target_slot = self.slot(slot)
        self._gate(Op.PRUNE, target_slot)
        epochs = _speed_epochs(speed, "PRUNE")
        curve = _curve(curve, "PRUNE")
        return [self._prune_now(target_slot, epochs, curve, f"prune ({speed})")]

    def force_prune(self, slot: str, reason: str) -> list[StageTransition]:
        """Instant prune that bypasses the minimum-age gate: fault recovery only, never a policy action.
        The embargo still follows. Slots without a live seed are left alone (returns ``[]``)."""
        target_slot = self.slot(slot)
        if target_slot.stage not in PRUNABLE_STAGES:
            return []
        return [self._prune_now(target_slot, 0, "linear", f"fault: {reason}")]

    def _prune_now(self, slot: SeedSlot, epochs: int, curve: str, reason: str) -> StageTransition:
        transition = slot.move_to(S.PRUNED, reason)
        slot.set_schedule(slot.schedule.retargeted(0.0, epochs, curve))
        self.optimizer.drop_seed(slot.name)
        for p in slot.seed_parameters():
            p.requires_grad_(False)
            p.grad = None
        return transition

    def fossilize(self, slot: str) -> list[StageTransition]:
        """HOLDING -> FOSSILIZED: the seed becomes permanent host capacity, trained by the host optimiser."""
        target_slot = self.slot(slot)
        self._gate(Op.FOSSILIZE, target_slot)
        transition = target_slot.move_to(S.FOSSILIZED, "fossilized")
        self.optimizer.fossilize_seed(slot)
        self._fossil_order.append(slot)
        return [transition]

    def execute(self, action: DecodedAction) -> list[StageTransition]:
        """Dispatch a decoded action (WAIT does nothing and returns ``[]``)."""
        op = action.op
        if op == Op.WAIT:
            return []

        def need(field: str) -> Any:
            value = getattr(action, field)
            if value is None:
                raise BadOpArgument(f"{op.name} needs DecodedAction.{field}; got None ({action})")
            return value

        slot = need("slot")
        if op == Op.GERMINATE:
            return self.germinate(slot, need("blueprint"), need("style"), need("tempo"), need("alpha_target"))
        if op == Op.ADVANCE:
            return self.advance(slot)
        if op == Op.SET_ALPHA_TARGET:
            return self.set_alpha_target(slot, need("alpha_target"), need("alpha_speed"), need("alpha_curve"))
        if op == Op.PRUNE:
            return self.prune(slot, need("alpha_speed"), need("alpha_curve"))
        if op == Op.FOSSILIZE:
            return self.fossilize(slot)
        raise BadOpArgument(f"unknown op {op!r}")

    def step_epoch(self) -> list[StageTransition]:
        """Once per env step, after the training epoch: schedules, timers, automatic transitions."""
        transitions: list[StageTransition] = []
        for name, slot in self.slots.items():
            slot_transitions, released = slot.tick(self.lifecycle)
            if released:
                self.optimizer.drop_seed(name)
            transitions.extend(slot_transitions)
        self._close_grad_norm_epoch()
        return transitions

    def set_contribution(self, slot: str, value: float | None) -> None:
        """Record the last counterfactual measurement for a slot's seed (shown in its summary)."""
        target_slot = self.slot(slot)
        if not target_slot.has_seed:
            raise BadOpArgument(f"slot {slot!r} holds no seed (stage {target_slot.stage.name}); no contribution to set")
        target_slot.last_contribution = None if value is None else float(value)

    # ---------------------------------------------------------------------------------------- summary
    def summary(self) -> tuple[SlotSummary, ...]:
        """Every slot's state as host values (one device sync per epoch for the gradient-norm ratios)."""
        ratios = self._grad_ratio_values()
        return tuple(s.summary(grad_norm_ratio=ratios[i]) for i, s in enumerate(self.slots.values()))

    # ------------------------------------------------------------------------------ gradient norms
    @torch.no_grad()
    def has_live_seeds(self) -> bool:
        return any(s.stage in LIVE_SEED_STAGES and s.has_seed for s in self.slots.values())

    def record_grad_norms(self, outside_sq: torch.Tensor | None = None) -> None:
        """After backward, before step: accumulate seed/host gradient-norm ratios on the device (no sync).

        ``outside_sq``: the squared norm of host gradients that live outside this model's parameters (a
        fused group's wide host holds the base host's gradients); the host norm then also counts them."""
        slots = list(self.slots.values())
        live = [s for s in slots if s.stage in LIVE_SEED_STAGES and s.has_seed]
        if not live:
            return
        host_grads = [p.grad for g in self.optimizer.host.param_groups for p in g["params"] if p.grad is not None]
        if not host_grads and outside_sq is None:
            return
        if outside_sq is None:
            host_norm = get_total_norm(host_grads).float().clamp_min(1e-12)
        else:
            inside_sq = get_total_norm(host_grads).float() ** 2 if host_grads else outside_sq.new_zeros(())
            host_norm = (inside_sq + outside_sq.float()).sqrt().clamp_min(1e-12)
        zero = host_norm.new_zeros(())
        ratios = []
        for s in slots:
            grads = [p.grad for p in s.seed_parameters() if p.grad is not None] if s in live else []
            ratios.append(get_total_norm(grads).float() / host_norm if grads else zero)
        stacked = torch.stack(ratios)
        if self._grad_ratio_sum is None or self._grad_ratio_sum.device != stacked.device:
            self._grad_ratio_sum = torch.zeros_like(stacked)
        self._grad_ratio_sum += stacked
        self._grad_ratio_batches += 1

    def grad_norm_sources(self) -> tuple[list[nn.Parameter], list[list[nn.Parameter]]]:
        """What ``record_grad_norms`` reads, for a fused group doing it for many envs at once: the host
        parameters that are this model's own (fossilized seeds; the base host's gradients live in the
        group's wide host) and, per slot, its live seed's parameters (empty for a slot without one)."""
        fossils = [p for g in self.optimizer.host.param_groups[1:] for p in g["params"]]
        seeds = [s.seed_parameters() if s.stage in LIVE_SEED_STAGES and s.has_seed else [] for s in self.slots.values()]
        return fossils, seeds

    def add_grad_ratios(self, ratio_sum: torch.Tensor, batches: int) -> None:
        """Add ``batches`` steps' summed seed/host gradient-norm ratios (``[slots]``) measured by a fused
        group, exactly as that many ``record_grad_norms`` calls would have."""
        if batches == 0:
            return
        if self._grad_ratio_sum is None or self._grad_ratio_sum.device != ratio_sum.device:
            self._grad_ratio_sum = torch.zeros_like(ratio_sum)
        self._grad_ratio_sum += ratio_sum
        self._grad_ratio_batches += batches

    def _close_grad_norm_epoch(self) -> None:
        if self._grad_ratio_sum is None or self._grad_ratio_batches == 0:
            self._epoch_grad_ratio = None
        else:
            self._epoch_grad_ratio = self._grad_ratio_sum / self._grad_ratio_batches
            self._grad_ratio_sum.zero_()
        self._grad_ratio_batches = 0
        self._epoch_grad_ratio_values = None

    def _grad_ratio_values(self) -> list[float]:
        if self._epoch_grad_ratio_values is None:
            if self._epoch_grad_ratio is None:
                self._epoch_grad_ratio_values = [0.0] * len(self._slot_names)
            else:
                self._epoch_grad_ratio_values = [float(v) for v in self._epoch_grad_ratio.tolist()]
        return self._epoch_grad_ratio_values

    # ---------------------------------------------------------------------------------- seed building
    def _blueprint_spec(self, name: str) -> BlueprintSpec:
        if name not in self.blueprints:
            raise BadOpArgument(f"unknown blueprint {name!r}; this model knows {sorted(self.blueprints)}")
        spec = self.blueprints[name]
        if not spec.supports(self.topology):
            raise BadOpArgument(
                f"blueprint {name!r} does not support host topology {self.topology!r} (it supports {sorted(spec.topologies)})"
            )
        return spec

    def _style_spec(self, name: str) -> BlendStyleSpec:
        if name not in self.styles:
            raise BadOpArgument(f"unknown blend style {name!r}; this model knows {sorted(self.styles)}")
        return self.styles[name]

    def _build_seed(
        self, slot: SeedSlot, blueprint: BlueprintSpec, style: BlendStyleSpec
    ) -> tuple[nn.Module, nn.Module]:
        """Build seed and blend on the host's device/dtype/memory format and check they keep the shape.

        Any failure of a plugin's factory or forward (an exception, ``sys.exit``, a wrong shape) is a
        ``SeedShapeError`` whose ``culprit`` names that plugin, raised before the model changes; running out
        of memory (``RESOURCE_ERRORS``) is not the plugin's failure and propagates as it is."""
        point = slot.point
        where = self.placement()
        probe = torch.zeros(2, *point.feature_shape, device=where.device, dtype=where.dtype)
        probe = probe.contiguous(memory_format=where.memory_format)
        shape = tuple(probe.shape)
        culprit = ("blueprint", blueprint.name)
        try:
            seed = _placed(blueprint.build(point.channels, point.spatial), where)
            seed.eval()  # no running-statistics updates, no dropout randomness
            with torch.no_grad():
                out = seed(probe)
        except RESOURCE_ERRORS:
            raise
        except (Exception, SystemExit) as error:
            raise SeedShapeError(
                f"slot {slot.name!r}: blueprint {blueprint.name!r} failed to build or run on features {shape}: "
                f"{type(error).__name__}: {error}",
                culprit,
            ) from error
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise SeedShapeError(
                f"slot {slot.name!r}: blueprint {blueprint.name!r} maps {shape} to {got}; a seed must keep [B, C, H, W]",
                culprit,
            )
        culprit = ("blend_style", style.name)
        try:
            blend = _placed(style.factory(point.channels), where)
            blend.eval()
            with torch.no_grad():
                blended = blend(probe, out, slot.alpha)
        except RESOURCE_ERRORS:
            raise
        except (Exception, SystemExit) as error:
            raise SeedShapeError(
                f"slot {slot.name!r}: blend style {style.name!r} failed to build or run on features {shape}: "
                f"{type(error).__name__}: {error}",
                culprit,
            ) from error
        if not isinstance(blended, torch.Tensor) or tuple(blended.shape) != shape:
            got = tuple(blended.shape) if isinstance(blended, torch.Tensor) else type(blended).__name__
            raise SeedShapeError(f"slot {slot.name!r}: blend style {style.name!r} returns {got} for features {shape}", culprit)
        seed.train(self.training)
        blend.train(self.training)
        return seed, blend

    # ---------------------------------------------------------------------------------- checkpointing
    def morphology(self) -> dict[str, Any]:
        """JSON-able description of every slot, enough to rebuild modules the state dict fits."""
        return {
            "format": MORPHOLOGY_FORMAT,
            "slots": {name: s.record() for name, s in self.slots.items()},
            "fossil_order": list(self._fossil_order),
            "grad_norm_ratio": list(self._grad_ratio_values()),
        }

    def load_morphology(self, morphology: Mapping[str, Any]) -> None:
        """Re-create seed modules and optimiser layout from ``morphology()`` output; then ``load_state_dict``
        (model) and ``optimizer.load_state_dict`` restore the tensors."""
        if morphology.get("format") != MORPHOLOGY_FORMAT:
            raise ValueError(f"morphology format {morphology.get('format')!r}; this Esper reads {MORPHOLOGY_FORMAT}")
        records = morphology["slots"]
        if tuple(records) != self._slot_names:
            raise ValueError(f"morphology has slots {list(records)}; this host has {list(self._slot_names)}")
        fossil_order = list(morphology["fossil_order"])
        fossilized = [name for name, r in records.items() if r["stage"] == S.FOSSILIZED.name]
        if sorted(fossil_order) != sorted(fossilized):
            raise ValueError(f"morphology fossil_order {fossil_order} does not match fossilized slots {fossilized}")
        for name, record in records.items():
            slot = self.host.slots[name]
            seed = blend = None
            if record["has_seed"]:
                try:
                    seed, blend = self._build_seed(
                        slot, self._blueprint_spec(record["blueprint"]), self._style_spec(record["style"])
                    )
                except BadOpArgument as error:
                    raise ValueError(f"morphology slot {name!r}: {error}") from None
            slot.restore_record(record, seed, blend)
        self._fossil_order = fossil_order
        self.optimizer = GrowthOptimizer(self._base_host_parameters(), self.training_config, nesterov=self.nesterov)
        for name in fossil_order:
            self.optimizer.add_seed(name, self.host.slots[name].seed_parameters())
            self.optimizer.fossilize_seed(name)
        for name, slot in self.slots.items():
            if slot.stage in LIVE_SEED_STAGES and slot.has_seed:
                self.optimizer.add_seed(name, slot.seed_parameters())
        self._grad_ratio_sum, self._grad_ratio_batches = None, 0
        ratios = [float(v) for v in morphology.get("grad_norm_ratio", [0.0] * len(self._slot_names))]
        self._epoch_grad_ratio = None
        self._epoch_grad_ratio_values = ratios

    @classmethod
    def restore(
        cls,
        host: nn.Module,
        blueprints: Mapping[str, BlueprintSpec],
        styles: Mapping[str, BlendStyleSpec],
        lifecycle: LifecycleConfig,
        training: TrainingConfig,
        morphology: Mapping[str, Any],
        *,
        nesterov: bool = False,
    ) -> "MorphogeneticModel":
        """A model whose modules match ``morphology``, ready for ``load_state_dict``."""
        model = cls(host, blueprints, styles, lifecycle, training, nesterov=nesterov)
        model.load_morphology(morphology)
        return model
