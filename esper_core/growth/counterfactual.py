"""Counterfactual seed contribution: accuracy with a seed's alpha as is versus forced to 0.

One fused forward per measured slot: the batch is duplicated and the slot gets a per-sample alpha override
(its alpha for the first half, 0 for the second), so "with" and "without" see identical inputs and weights.
Runs in eval mode (batch statistics would otherwise mix the halves) under ``no_grad``; correct counts
accumulate on the device and are read with one sync at the end.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable

import attrs
import torch

from esper_core.stages import SeedStage

if TYPE_CHECKING:
    from esper_core.growth.model import MorphogeneticModel

#: Stages measured by default. Fossilized seeds are permanent host capacity (rewards bank their value when
#: they fossilize), so measuring them every step would only cost passes; pass ``stages`` to include them.
MEASURED_STAGES: frozenset[SeedStage] = frozenset({SeedStage.BLENDING, SeedStage.HOLDING})


@attrs.frozen
class SlotContribution:
    """Accuracies (fractions in [0, 1]) on the same samples with the seed as is and with its alpha at 0."""

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
) -> dict[str, SlotContribution]:
    """Per measured slot, accuracy with and without its seed on ``x`` (uint8 images) and labels ``y``.

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
    use_autocast = autocast_dtype is not None and where.device.type == "cuda"
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = normalise(x[start : start + batch_size].to(where.device, non_blocking=True))
            xb = xb.to(dtype=where.dtype).contiguous(memory_format=where.memory_format)
            yb = y[start : start + batch_size].to(where.device, non_blocking=True)
            n = xb.shape[0]
            doubled = torch.cat([xb, xb]).contiguous(memory_format=where.memory_format)
            for index, name in enumerate(names):
                slot = model.slots[name]
                override = torch.cat([slot.alpha.detach().expand(n), torch.zeros_like(slot.alpha).expand(n)])
                autocast = torch.autocast("cuda", dtype=autocast_dtype) if use_autocast else contextlib.nullcontext()
                with slot.alpha_override(override), autocast:
                    hits = (model(doubled).argmax(dim=1) == torch.cat([yb, yb])).view(2, n).sum(dim=1)
                correct[index] += hits
    finally:
        model.train(was_training)
    counts = correct.tolist()  # the one host sync
    total = x.shape[0]
    return {name: SlotContribution(hit[0] / total, hit[1] / total) for name, hit in zip(names, counts)}
