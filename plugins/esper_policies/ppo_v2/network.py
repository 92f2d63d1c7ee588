"""The recurrent factored actor-critic (docs/design/ppo-lessons.md, "Network sizing").

features (+ a learned embedding of each slot's blueprint) -> Linear + LayerNorm + ReLU -> LSTM ->
LayerNorm -> one head per action head, a V(s) critic (the PPO baseline) and an op-conditioned Q(s, op)
that reads a *detached* trunk (a diagnostic only: its loss never reaches the shared layers).

Widths come from the policy options (``feature_dim``, ``lstm_dim``) so tests can use tiny networks; at
the defaults (512) they are exactly the documented ones: heads 512->256->n, the blueprint head 512->512->128->n, the critic 512->256->128->64->1.
The critic's hidden layers are never narrower than ``MIN_CRITIC_WIDTH`` (see there why).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import attrs
import torch
from torch import nn

from esper_core.ops import HEADS, Op

HIDDEN_GAIN = math.sqrt(2.0)
OUTPUT_GAIN = 0.01
#: Narrowest hidden layer of the critic. Each of its hidden layers is LayerNorm'd, and a LayerNorm over k
#: features leaves k - 2 degrees of freedom (zero mean, unit variance): over 2 it maps every input to
#: (+1, -1) or (-1, +1), over 1 to its bias. So at lstm_dim < 24 (eighth = lstm_dim // 8 <= 2) the critic
#: could output at most two values whatever the state (explained variance stuck at 0 in every small-width
#: test). The default widths (64 and up) are untouched.
MIN_CRITIC_WIDTH = 16

State = tuple[torch.Tensor, torch.Tensor]


@attrs.frozen(eq=False)
class NetworkOutput:
    """``logits`` head -> [..., n]; ``value`` [...] float32; ``q`` [..., n_ops] float32."""

    logits: dict[str, torch.Tensor]
    value: torch.Tensor
    q: torch.Tensor


def _linear(n_in: int, n_out: int, gain: float) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(widths: Sequence[int], layer_norm: bool = False) -> nn.Sequential:
    """Hidden layers with ReLU (gain sqrt 2), last layer linear with gain 0.01."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        layers.append(_linear(n_in, n_out, OUTPUT_GAIN if last else HIDDEN_GAIN))
        if not last:
            if layer_norm:
                layers.append(nn.LayerNorm(n_out))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class PolicyNetwork(nn.Module):
    """Shapes: ``features`` [..., D] float, ``blueprint_index`` [..., S] int64; state (h, c) [1, B, lstm_dim]."""

    def __init__(
        self,
        obs_dim: int,
        n_slots: int,
        n_blueprints: int,
        head_sizes: Mapping[str, int],
        feature_dim: int = 512,
        lstm_dim: int = 512,
        blueprint_embed_dim: int = 4,
    ) -> None:
        super().__init__()
        missing = [h for h in HEADS if h not in head_sizes]
        if missing:
            raise ValueError(f"PolicyNetwork: head_sizes lacks head(s) {missing}")
        for name, value in (("feature_dim", feature_dim), ("lstm_dim", lstm_dim), ("blueprint_embed_dim", blueprint_embed_dim)):
            if value < 1:
                raise ValueError(f"policy.options.{name} must be >= 1; got {value}")
        self.obs_dim, self.n_slots, self.lstm_dim = obs_dim, n_slots, lstm_dim
        self.blueprint_embedding = nn.Embedding(n_blueprints, blueprint_embed_dim)
        self.feature_net = nn.Sequential(
            _linear(obs_dim + n_slots * blueprint_embed_dim, feature_dim, HIDDEN_GAIN),
            nn.LayerNorm(feature_dim),
            nn.ReLU(),
        )
        self.lstm = nn.LSTM(feature_dim, lstm_dim)
        self.post_norm = nn.LayerNorm(lstm_dim)
        half, quarter, eighth = max(1, lstm_dim // 2), max(1, lstm_dim // 4), max(1, lstm_dim // 8)
        self.heads = nn.ModuleDict(
            {
                head: _mlp([lstm_dim, lstm_dim, quarter, n] if head == "blueprint" else [lstm_dim, half, n])
                for head, n in ((h, int(head_sizes[h])) for h in HEADS)
            }
        )
        self.critic = _mlp(
            [lstm_dim, *(max(MIN_CRITIC_WIDTH, w) for w in (half, quarter, eighth)), 1], layer_norm=True
        )
        self.q_head = _mlp([lstm_dim, half, len(Op)])
        self._init_lstm()

    def _init_lstm(self) -> None:
        """Orthogonal weights, zero biases except the forget gate (total bias 1: remember by default)."""
        n = self.lstm_dim
        for name, param in self.lstm.named_parameters():
            if name.startswith("weight"):
                for gate in range(4):  # each gate's block on its own, so each is orthogonal
                    nn.init.orthogonal_(param.data[gate * n : (gate + 1) * n])
            elif name.startswith("bias_ih"):
                nn.init.zeros_(param)
                param.data[n : 2 * n] = 1.0  # PyTorch gate order: input, forget, cell, output
            else:
                nn.init.zeros_(param)

    # ---------------------------------------------------------------------------------------- groups
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named groups for per-part gradient norms: trunk, one per head, critic, q (the diagnostic)."""
        trunk = [
            *self.blueprint_embedding.parameters(),
            *self.feature_net.parameters(),
            *self.lstm.parameters(),
            *self.post_norm.parameters(),
        ]
        groups = {"trunk": trunk}
        groups.update({head: list(self.heads[head].parameters()) for head in HEADS})
        groups["critic"] = list(self.critic.parameters())
        groups["q"] = list(self.q_head.parameters())
        return groups

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def initial_state(self, n_envs: int, device: torch.device | str | None = None) -> State:
        zeros = torch.zeros(1, n_envs, self.lstm_dim, device=device)
        return zeros, zeros.clone()

    # --------------------------------------------------------------------------------------- forward
    def embed(self, features: torch.Tensor, blueprint_index: torch.Tensor) -> torch.Tensor:
        embedded = self.blueprint_embedding(blueprint_index).flatten(-2)
        return self.feature_net(torch.cat([features, embedded.to(features.dtype)], dim=-1))

    def heads_forward(self, trunk: torch.Tensor) -> NetworkOutput:
        z = self.post_norm(trunk)
        logits = {head: self.heads[head](z) for head in HEADS}
        value = self.critic(z).squeeze(-1).float()
        q = self.q_head(z.detach()).float()
        return NetworkOutput(logits=logits, value=value, q=q)

    def step(self, features: torch.Tensor, blueprint_index: torch.Tensor, state: State) -> tuple[NetworkOutput, State]:
        """One env step for a batch: features [B, D], blueprint_index [B, S]."""
        x = self.embed(features, blueprint_index).unsqueeze(0)
        out, (h, c) = self.lstm(x, (state[0].to(x.dtype), state[1].to(x.dtype)))
        return self.heads_forward(out.squeeze(0)), (h.float(), c.float())

    def unroll(
        self,
        features: torch.Tensor,
        blueprint_index: torch.Tensor,
        state: State,
        reset_before: torch.Tensor,
        segment_starts: Sequence[int],
    ) -> tuple[NetworkOutput, State]:
        """Replay a time-major sequence [T, B, ...] from ``state``.

        ``reset_before[t]`` (bool [T, B]) zeroes an env's state before step t (a new episode starts
        there); ``segment_starts`` (host ints, 0 first) are the steps where some env resets, so every
        segment between them runs as one LSTM call. Returns the outputs and the state after step T-1.
        """
        x = self.embed(features, blueprint_index)
        h, c = state[0].to(x.dtype), state[1].to(x.dtype)
        bounds = [*segment_starts, features.shape[0]]
        outputs = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            keep = (~reset_before[start]).to(x.dtype).view(1, -1, 1)
            h, c = h * keep, c * keep
            out, (h, c) = self.lstm(x[start:stop], (h, c))
            outputs.append(out)
        return self.heads_forward(torch.cat(outputs, dim=0)), (h.float(), c.float())


def segment_starts(reset_before: torch.Tensor) -> list[int]:
    """Host list of the steps where any env starts a new episode (always 0). One device sync."""
    any_reset = reset_before.any(dim=1)
    any_reset[0] = True
    return any_reset.nonzero().flatten().tolist()
