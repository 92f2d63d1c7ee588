"""``linear_multiply``: the seed modulates the host's features multiplicatively."""

from __future__ import annotations

import torch
from torch import nn

from esper_blends.broadcast import broadcast_alpha
from esper_core.specs import BlendStyleSpec


class LinearMultiply(nn.Module):
    """``h * (1 + a*s)``: the seed rescales features (FiLM-like) instead of adding new ones.

    A zero seed output leaves ``h`` unchanged at every alpha, so near-zero-initialised blueprints start
    harmless here too.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return h * (1 + broadcast_alpha(alpha, h) * s.to(h.dtype))


SPEC = BlendStyleSpec(
    name="linear_multiply",
    description="Multiplicative blend: the seed output rescales the host features, scaled by alpha.",
    formula="h * (1 + a*s)",
    factory=LinearMultiply,
)
