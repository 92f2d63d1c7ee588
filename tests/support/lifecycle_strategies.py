"""Tiny hosts, blueprints, blend styles and Hypothesis strategies for the model-core tests.

Self-contained on purpose: the real plugins are developed separately, and these tests pin the core's
behaviour, not theirs. Everything is small enough to run many examples on a 2-core CPU.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from hypothesis import strategies as st
from torch import nn

from esper_core.config import LifecycleConfig, TrainingConfig
from esper_core.growth.lifecycle import LifecycleError, germination_allowed, legal_ops_for_slot
from esper_core.growth.model import MorphogeneticModel
from esper_core.ops import ALPHA_CURVES, ALPHA_SPEEDS, Op
from esper_core.records import SlotPoint, StageTransition
from esper_core.specs import BlendStyleSpec, BlueprintSpec

CLASSES = 3
IMAGE = 8
SLOTS = ("early", "late")


class TinyHost(nn.Module):
    """Two slot points: ``early`` (4 x 8 x 8) and ``late`` (6 x 4 x 4); BatchNorm so eval mode matters."""

    topology = "cnn"

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(6, CLASSES)
        self.slots = nn.ModuleDict({"early": nn.Identity(), "late": nn.Identity()})

    def slot_points(self) -> tuple[SlotPoint, ...]:
        return (SlotPoint("early", 4, IMAGE), SlotPoint("late", 6, IMAGE // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.slots["early"](self.stem(x))
        x = self.slots["late"](self.down(x))
        return self.head(x.mean(dim=(2, 3)))


class ConvSeed(nn.Module):
    """conv -> ReLU -> conv; ``zero_out`` makes it start harmless (like real blueprints)."""

    def __init__(self, channels: int, zero_out: bool = False, norm: bool = False) -> None:
        super().__init__()
        self.inner = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.out = nn.Conv2d(channels, channels, 1)
        if zero_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.norm(self.inner(x))))


class WrongShapeSeed(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels + 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _per_sample(alpha: torch.Tensor) -> torch.Tensor:
    return alpha.view(-1, 1, 1, 1) if alpha.dim() == 1 else alpha


class AddBlend(nn.Module):
    def forward(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return h + _per_sample(alpha) * s


class GatedBlend(nn.Module):
    """Owns parameters (a per-channel gate), like a real gated style."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return h + _per_sample(alpha) * torch.sigmoid(self.gate) * 2.0 * s


BLUEPRINTS: dict[str, BlueprintSpec] = {
    "conv": BlueprintSpec(name="conv", description="random conv pair", factory=lambda c, s: ConvSeed(c)),
    "zero_conv": BlueprintSpec(
        name="zero_conv", description="conv pair, zero output", factory=lambda c, s: ConvSeed(c, zero_out=True)
    ),
    "norm_conv": BlueprintSpec(
        name="norm_conv", description="conv pair with BatchNorm", factory=lambda c, s: ConvSeed(c, norm=True)
    ),
}
BAD_BLUEPRINTS: dict[str, BlueprintSpec] = {
    "wrong_shape": BlueprintSpec(name="wrong_shape", description="adds a channel", factory=lambda c, s: WrongShapeSeed(c)),
    "mlp_only": BlueprintSpec(
        name="mlp_only", description="other topology", factory=lambda c, s: ConvSeed(c), topologies=frozenset({"mlp"})
    ),
}
STYLES: dict[str, BlendStyleSpec] = {
    "add": BlendStyleSpec(name="add", description="h + a s", formula="h + a*s", factory=lambda c: AddBlend()),
    "gated": BlendStyleSpec(name="gated", description="gated add", formula="h + a*g*s", factory=GatedBlend),
}

FAST_LIFECYCLE = LifecycleConfig(
    min_training_epochs=1, min_prune_age=2, embargo_epochs=2, resetting_epochs=1, max_seeds=2
)
TRAINING = TrainingConfig(lr=0.05, momentum=0.9, weight_decay=5e-4, seed_lr=0.1)


def make_model(
    lifecycle: LifecycleConfig = FAST_LIFECYCLE,
    training: TrainingConfig = TRAINING,
    seed: int = 0,
    blueprints: dict[str, BlueprintSpec] | None = None,
) -> MorphogeneticModel:
    torch.manual_seed(seed)
    return MorphogeneticModel(TinyHost(), blueprints or BLUEPRINTS, STYLES, lifecycle, training)


def batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, IMAGE, IMAGE, generator=generator)
    y = torch.randint(0, CLASSES, (n,), generator=generator)
    return x, y


def train_step(model: MorphogeneticModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    model.record_grad_norms()
    model.optimizer.step()
    return loss.detach()


# ------------------------------------------------------------------------------------------ strategies
@st.composite
def lifecycle_configs(draw: st.DrawFn) -> LifecycleConfig:
    return LifecycleConfig(
        min_training_epochs=draw(st.integers(0, 2)),
        min_prune_age=draw(st.integers(0, 3)),
        embargo_epochs=draw(st.integers(0, 2)),
        resetting_epochs=draw(st.integers(0, 2)),
        max_seeds=draw(st.integers(1, 2)),
        germinate_curve=draw(st.sampled_from(ALPHA_CURVES)),
    )


slot_names = st.sampled_from(SLOTS)
alpha_targets = st.sampled_from((0.5, 0.7, 1.0))
speeds = st.sampled_from(tuple(ALPHA_SPEEDS))
curves = st.sampled_from(ALPHA_CURVES)

def model_calls_for(
    slots: Sequence[str], blueprints: Sequence[str], styles: Sequence[str]
) -> st.SearchStrategy[tuple[Any, ...]]:
    """One model API call as a tuple (name, *args) on these slots, blueprints and styles; ("step",) is
    step_epoch. One strategy per model (``guided_call``), so any topology's host can be driven."""
    names = st.sampled_from(tuple(slots))
    return st.one_of(
        st.tuples(
            st.just("germinate"), names, st.sampled_from(tuple(blueprints)), st.sampled_from(tuple(styles)),
            st.integers(0, 3), alpha_targets,
        ),
        st.tuples(st.just("advance"), names),
        st.tuples(st.just("set_alpha_target"), names, alpha_targets, speeds, curves),
        st.tuples(st.just("prune"), names, speeds, curves),
        st.tuples(st.just("fossilize"), names),
        st.tuples(st.just("step")),
        st.tuples(st.just("step")),
    )


#: A model API call on the tiny CNN host (``model_calls_for`` for any other).
model_calls = model_calls_for(SLOTS, tuple(BLUEPRINTS), tuple(STYLES))


def call_sequences(min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    return st.lists(model_calls, min_size=min_size, max_size=max_size)


def _call_for(op: Op, slot: str, model: MorphogeneticModel) -> st.SearchStrategy[tuple[Any, ...]]:
    if op == Op.GERMINATE:
        return st.tuples(
            st.just("germinate"), st.just(slot), st.sampled_from(tuple(model.blueprints)),
            st.sampled_from(tuple(model.styles)), st.integers(0, 3), alpha_targets,
        )
    if op == Op.SET_ALPHA_TARGET:
        return st.tuples(st.just("set_alpha_target"), st.just(slot), alpha_targets, speeds, curves)
    if op == Op.PRUNE:
        return st.tuples(st.just("prune"), st.just(slot), speeds, curves)
    return st.just((op.name.lower(), slot))


def guided_call(data: st.DataObject, model: MorphogeneticModel, lifecycle: LifecycleConfig) -> tuple[Any, ...]:
    """Mostly a call the gates allow now (or a step), sometimes any call: random sequences then reach
    BLENDING, HOLDING, FOSSILIZED and the prune cooldown instead of bouncing off the gates."""
    if data.draw(st.integers(0, 9), label="any call?") < 3:
        return data.draw(model_calls_for(model.slot_names, tuple(model.blueprints), tuple(model.styles)), label="any call")
    summaries = model.summary()
    may_germinate = germination_allowed(summaries, lifecycle)
    options: list[st.SearchStrategy[tuple[Any, ...]]] = [st.just(("step",))] * 3
    for summary in summaries:
        for op in sorted(legal_ops_for_slot(summary, lifecycle)):
            if op != Op.GERMINATE or may_germinate:
                # forward moves weigh more than PRUNE/retarget, so seeds also live long enough to fossilize
                options.extend([_call_for(op, summary.name, model)] * (3 if op in (Op.ADVANCE, Op.FOSSILIZE) else 1))
    return data.draw(data.draw(st.sampled_from(options), label="legal op"), label="legal call")


def apply_call(model: MorphogeneticModel, call: Sequence[Any]) -> list[StageTransition] | LifecycleError:
    """Run one call; a refused call returns its LifecycleError instead of raising."""
    name, *args = call
    try:
        if name == "step":
            return model.step_epoch()
        return getattr(model, name)(*args)
    except LifecycleError as error:
        return error
