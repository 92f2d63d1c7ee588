"""``conv_dilated``: two dilated 3x3 convolutions, a wide receptive field for few parameters."""

from __future__ import annotations

import torch
from torch import nn

from esper_core.api import BlueprintSpec

#: Feature maps smaller than this get half the dilation, so the taps still land inside the map.
SMALL_MAP = 8


class DilatedSeed(nn.Module):
    """3x3 conv (dilation d) C -> C/2, GroupNorm, ReLU, 3x3 conv (dilation 2d) C/2 -> C.

    With d = 2 one seed sees a 13x13 window of the slot's features, about what four undilated 3x3
    convolutions would see. The last convolution starts at zero: a fresh seed outputs exactly 0, so
    germinating it cannot change what the host computes, yet its weight gradient is non-zero, so it
    starts learning at once. GroupNorm (not BatchNorm) keeps each sample independent of the batch.
    """

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        dilation = 1 if spatial < SMALL_MAP else 2
        hidden = max(2, channels // 2)
        self.inner = nn.Conv2d(channels, hidden, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm = nn.GroupNorm(1, hidden)
        self.outer = nn.Conv2d(hidden, channels, 3, padding=2 * dilation, dilation=2 * dilation)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(torch.relu(self.norm(self.inner(x))))


CONV_DILATED = BlueprintSpec(
    name="conv_dilated",
    description="Two dilated 3x3 convs (dilation 2 then 4) through C/2 channels: a 13x13 view; output starts at 0.",
    factory=DilatedSeed,
    topologies=frozenset({"cnn"}),
)
