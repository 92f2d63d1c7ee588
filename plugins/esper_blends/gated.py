"""``gated``: a small learned gate decides, per sample, how much of the seed to let in."""

from __future__ import annotations

import torch
from torch import nn

from esper_blends.broadcast import broadcast_alpha
from esper_core.specs import BlendStyleSpec


class Gated(nn.Module):
    """``h + a * g(h) * s`` with ``g(h) = sigmoid(w . mean_hw(h) + b)``, one scalar in (0, 1) per sample.

    The gate's ``C + 1`` parameters belong to the seed (the seed optimiser trains them, and they are
    pruned or fossilized with it). It starts at ``w = 0, b = 0``: ``g = 0.5`` for every sample, the point
    of largest sigmoid slope, so it learns which inputs the seed helps from the first step.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gate = nn.Linear(channels, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def gate_values(self, h: torch.Tensor) -> torch.Tensor:
        """The per-sample gate ``[B, 1, 1, 1]`` in (0, 1)."""
        pooled = h.mean(dim=(2, 3))
        return torch.sigmoid(self.gate(pooled)).to(h.dtype).view(-1, 1, 1, 1)

    def forward(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return h + broadcast_alpha(alpha, h) * self.gate_values(h) * s.to(h.dtype)


SPEC = BlendStyleSpec(
    name="gated",
    description="Residual blend through a learned per-sample gate g(h) in (0,1) (C+1 params, part of the seed).",
    formula="h + a*g(h)*s, g(h) = sigmoid(w . mean_hw(h) + b)",
    factory=Gated,
    topologies=frozenset({"cnn"}),  # the gate pools [B, C, H, W] features over H and W
)
