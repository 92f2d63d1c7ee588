"""``linear_add``: the seed's output is added to the host's features, scaled by alpha."""

from __future__ import annotations

import torch
from torch import nn

from esper_blends.broadcast import broadcast_alpha
from esper_core.specs import BlendStyleSpec


class LinearAdd(nn.Module):
    """``h + a*s``: the plain residual blend; at alpha 1 the seed is an ordinary residual branch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return h + broadcast_alpha(alpha, h) * s.to(h.dtype)


SPEC = BlendStyleSpec(
    name="linear_add",
    description="Residual blend: the seed output is added to the host features, scaled by alpha.",
    formula="h + a*s",
    factory=LinearAdd,
)
