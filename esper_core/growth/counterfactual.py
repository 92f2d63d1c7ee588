"""Counterfactual seed contribution: accuracy with a seed's alpha as is versus forced to 0.

One fused forward per measured slot: the batch is duplicated and the slot gets a per-sample alpha override
(its alpha for the first half, 0 for the second), so "with" and "without" see identical inputs and weights.
Runs in eval mode (batch statistics would otherwise mix the halves) under ``no_grad``; correct counts
accumulate on the device and are read with one sync at the end.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import attrs
import torch
import torch.nn.functional as F

from esper_core.records import ACCURACY, TaskMetric
from esper_core.stages import SeedStage

if TYPE_CHECKING:
    from esper_core.growth.model import MorphogeneticModel

#: Stages measured by default. Fossilized seeds are permanent host capacity (rewards bank their value when
#: they fossilize), so measuring them every step would only cost passes; pass ``stages`` to include them.
MEASURED_STAGES: frozenset[SeedStage] = frozenset({SeedStage.BLENDING, SeedStage.HOLDING})


@attrs.frozen
class SlotContribution:
    """Accuracies (fractions in [0, 1]) on the same samples with the seed as is and with its alpha at 0
    (for a task judged by another metric, its scores: ``TaskMetric.score``)."""

    acc_with: float
    acc_without: float

    @property
    def contribution(self) -> float:
        return self.acc_with - self.acc_without


def measured_slots(model: "MorphogeneticModel", stages: frozenset[SeedStage] = MEASURED_STAGES) -> list[str]:
    """Slots whose seed is in ``stages`` and currently blended in (alpha > 0)."""
    return [
        name
        for name, slot in model.slots.items()
        if slot.has_seed and slot.stage in stages and slot.schedule.value > 0.0
    ]


@torch.no_grad()
def contributions(
    model: "MorphogeneticModel",
    x: torch.Tensor,
    y: torch.Tensor,
    normalise: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    *,
    stages: frozenset[SeedStage] = MEASURED_STAGES,
    autocast_dtype: torch.dtype | None = None,
    metric: TaskMetric = ACCURACY,
) -> dict[str, SlotContribution]:
    """Per measured slot, accuracy with and without its seed on ``x`` (uint8 images) and labels ``y``;
    for a task whose ``metric`` is not accuracy, that metric's score (``TaskMetric.score``) instead.

    ``batch_size`` is the number of samples per pass (each pass runs twice that, the duplicated batch).
    ``autocast_dtype`` (e.g. torch.bfloat16) enables autocast on CUDA; ignored elsewhere.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    names = measured_slots(model, stages)
    if not names or x.shape[0] == 0:
        return {}
    where = model.placement()
    was_training = model.training
    model.eval()
    correct = torch.zeros(len(names), 2, dtype=torch.long, device=where.device)
    losses = torch.zeros(len(names), 2, device=where.device) if metric.from_loss else None
    use_autocast = autocast_dtype is not None and where.device.type == "cuda"
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = normalise(x[start : start + batch_size].to(where.device, non_blocking=True))
            if xb.is_floating_point():  # images; token ids stay integers
                xb = xb.to(dtype=where.dtype).contiguous(memory_format=where.memory_format)
            yb = y[start : start + batch_size].to(where.device, non_blocking=True)
            n = xb.shape[0]
            doubled = torch.cat([xb, xb]).contiguous(memory_format=where.memory_format)
            for index, name in enumerate(names):
                slot = model.slots[name]
                override = torch.cat([slot.alpha.detach().expand(n), torch.zeros_like(slot.alpha).expand(n)])
                autocast = torch.autocast("cuda", dtype=autocast_dtype) if use_autocast else contextlib.nullcontext()
                with slot.alpha_override(override), autocast:
                    logits = model(doubled)
                    hits = (logits.argmax(dim=1) == torch.cat([yb, yb])).view(2, n, -1).sum(dim=(1, 2))
                correct[index] += hits
                if losses is not None:
                    per_target = F.cross_entropy(logits.float(), torch.cat([yb, yb]), reduction="none")
                    losses[index] += per_target.view(2, n, -1).sum(dim=(1, 2))
    finally:
        model.train(was_training)
    if losses is None:
        losses = torch.zeros(len(names), 2, device=where.device)
    counts, loss_sums = torch.stack([correct.float(), losses]).tolist()  # the one host sync
    # one target per sample, or one per position of a sequence
    return scored_contributions(names, counts, loss_sums, y.numel(), metric)


def scored_contributions(
    names: Sequence[str], counts: Sequence[Sequence[float]], loss_sums: Sequence[Sequence[float]], targets: int,
    metric: TaskMetric,
) -> dict[str, SlotContribution]:
    """Per slot, the metric's *score* with and without its seed, from the passes' correct counts and loss
    sums (``[with, without]`` per slot, already on the host). Every path scores here, so a contribution is
    in the same units as the validation score it is compared with, whatever the task's metric; for plain
    accuracy the score is ``correct / targets`` bit for bit."""
    scores = {}
    for name, hit, loss in zip(names, counts, loss_sums):
        with_, without = (metric.score(metric.value(loss[h] / targets, hit[h] / targets)) for h in (0, 1))
        scores[name] = SlotContribution(with_, without)
    return scores


def growth_slots(model: "MorphogeneticModel") -> list[str]:
    """Slots whose seed changes the forward now (alpha > 0 in a blending stage, fossils and fading prunes
    included): what the no-growth reference switches off all at once."""
    return [
        name
        for name, slot in model.slots.items()
        if not slot.passes_through() and slot.stage != SeedStage.TRAINING and slot.schedule.value > 0.0
    ]


@contextlib.contextmanager
def growth_switched_off(model: "MorphogeneticModel") -> Iterator[list[str]]:
    """Inside the block every ``growth_slots`` seed has alpha 0 at once: the network computes what it would
    without anything it grew (a no-growth reference on the same weights). Yields the slots switched off
    (none: the network is its own reference). Alpha buffers are restored on exit, whatever happens."""
    names = growth_slots(model)
    saved = [(model.slots[name].alpha, model.slots[name].alpha.detach().clone()) for name in names]
    try:
        with torch.no_grad():
            for alpha, _ in saved:
                alpha.zero_()
        yield names
    finally:
        with torch.no_grad():
            for alpha, value in saved:
                alpha.copy_(value)
