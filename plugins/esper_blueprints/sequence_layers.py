"""Building blocks of the ``transformer`` blueprints: modules on the residual stream [B, T, D].

Each seed ends in a zeroed layer (``zero_output_layer``) so it starts function-preserving, and normalises
its input with LayerNorm so what it learns does not depend on the stream's scale at its slot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from esper_blueprints.layers import hidden_width, zero_output_layer

#: Every transformer blueprint declares this topology (the ``gpt`` host's).
TRANSFORMER = frozenset({"transformer"})


class LowRankAdapter(nn.Module):
    """LayerNorm -> down to ``rank`` -> up (zeroed): a LoRA-style residual update of rank ``rank``."""

    def __init__(self, width: int, rank: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.down = nn.Linear(width, min(rank, width), bias=False)
        self.up = zero_output_layer(nn.Linear(min(rank, width), width, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(self.norm(x)))


class FeedForward(nn.Module):
    """LayerNorm -> Linear(width x ``expansion``) -> GELU -> Linear (zeroed): an extra MLP sub-block."""

    def __init__(self, width: int, expansion: float) -> None:
        super().__init__()
        hidden = hidden_width(width, expansion)
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, hidden)
        self.down = zero_output_layer(nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(self.norm(x))))


class ExtraHeads(nn.Module):
    """LayerNorm -> ``heads`` new causal attention heads of ``head_width`` -> output projection (zeroed)."""

    def __init__(self, width: int, heads: int, head_width: int) -> None:
        super().__init__()
        self.heads, self.head_width = heads, head_width
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * heads * head_width)
        self.out = zero_output_layer(nn.Linear(heads * head_width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(batch, length, 3, self.heads, self.head_width).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        return self.out(attended.transpose(1, 2).reshape(batch, length, self.heads * self.head_width))


class ZeroAffineLayerNorm(nn.LayerNorm):
    """LayerNorm whose scale and shift start at 0: the cheapest seed (2 D params), a learned re-centring
    and re-scaling of the stream once blended in additively."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        zero_output_layer(self)
