"""``attention``: spatial self-attention (a non-local block), the only built-in seed with a global view."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from esper_blueprints.layers import conv1x1, group_norm, hidden_width, zero_output_layer
from esper_core.specs import BlueprintSpec

#: Keys and values are average-pooled to at most this many positions per side, bounding the attention
#: matrix at (H*W) x 256 whatever the slot's resolution.
MAX_KEY_SIDE = 16


class SpatialSelfAttention(nn.Module):
    """Every position attends to every (pooled) position: pre-GroupNorm, 1x1 query/key at C/8, value at C,
    scaled dot-product attention (fused kernels on CUDA, bf16-safe), zero-initialised 1x1 output."""

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        self.key_channels = hidden_width(channels, 0.125)
        self.norm = group_norm(channels)
        self.query = conv1x1(channels, self.key_channels)
        self.key = conv1x1(channels, self.key_channels)
        self.value = conv1x1(channels, channels)
        self.out = zero_output_layer(conv1x1(channels, channels, bias=True))
        self.pool = nn.AdaptiveAvgPool2d(MAX_KEY_SIDE) if spatial > MAX_KEY_SIDE else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        normed = self.norm(x)
        pooled = self.pool(normed)
        query = self.query(normed).flatten(2).transpose(1, 2)  # [B, HW, Ck]
        key = self.key(pooled).flatten(2).transpose(1, 2)  # [B, N, Ck]
        value = self.value(pooled).flatten(2).transpose(1, 2)  # [B, N, C]
        attended = F.scaled_dot_product_attention(query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1))
        attended = attended.squeeze(1).transpose(1, 2).reshape(batch, channels, height, width)
        return self.out(attended)


def build(channels: int, spatial: int) -> nn.Module:
    return SpatialSelfAttention(channels, spatial)


SPEC = BlueprintSpec(
    name="attention",
    description=(
        "Spatial self-attention (non-local block): queries/keys at C/8, keys pooled to <=16x16, "
        "zero-initialised output (~2.3 C^2 params)."
    ),
    factory=build,
    topologies=frozenset({"cnn"}),
)
