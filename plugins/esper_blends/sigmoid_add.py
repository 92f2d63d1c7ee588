"""``sigmoid_add``: the seed's output gates itself through a sigmoid before it is added."""

from __future__ import annotations

import torch
from torch import nn

from esper_blends.broadcast import broadcast_alpha
from esper_core.specs import BlendStyleSpec


class SigmoidAdd(nn.Module):
    """``h + a * sigmoid(s) * s`` (alpha times SiLU of the seed output).

    Why: the slots sit after ReLU stages, so host features are non-negative. The self-gate passes
    positive seed outputs almost unchanged but squashes negative ones (never below about -0.28*a), so a
    seed can add features yet can barely push activations below zero while it is still being judged.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        s = s.to(h.dtype)
        return h + broadcast_alpha(alpha, h) * (torch.sigmoid(s) * s)


SPEC = BlendStyleSpec(
    name="sigmoid_add",
    description="Self-gated residual blend: alpha times SiLU of the seed output (negative outputs squashed).",
    formula="h + a*sigmoid(s)*s",
    factory=SigmoidAdd,
)
