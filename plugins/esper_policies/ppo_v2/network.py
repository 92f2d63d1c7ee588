"""The recurrent factored actor-critic (docs/design/ppo-lessons.md, "Network sizing").

features (+ a learned embedding of each slot's blueprint) -> Linear + LayerNorm + ReLU -> LSTM ->
LayerNorm -> one head per action head, a V(s) critic (the PPO baseline) and an op-conditioned Q(s, op)
that reads a *detached* trunk (a diagnostic only: its loss never reaches the shared layers).

Where the critic reads from is ``critic_trunk``:

- ``"shared"`` (default): the critic reads the recurrent trunk above, and its value loss trains that trunk
  alongside the actor heads' losses. Module names and shapes are those of every earlier checkpoint.
- ``"own"``: the critic has its own feed-forward trunk on the observation (its own blueprint embedding ->
  Linear + LayerNorm + ReLU, ``feature_dim`` wide) and no LSTM: the observation already carries the episode
  step and the accuracy history. Why: on a shared trunk the critic competes with the actor heads for the
  LSTM's features, and in the GPU study it underfit (explained variance near 0). With it the value loss
  reaches no actor parameter and the policy and entropy losses reach no critic parameter; the recurrent
  trunk is the actor's alone (and the detached Q head's input).

Widths come from the policy options (``feature_dim``, ``lstm_dim``) so tests can use tiny networks; at
the defaults (512) they are exactly the documented ones: heads 512->256->n, the blueprint head 512->512->128->n,
the critic 512->256->128->64->1 (its widths halve from its input: ``lstm_dim`` shared, ``feature_dim`` own).
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
#: Values of ``critic_trunk`` (see the module docstring).
CRITIC_TRUNKS = ("shared", "own")

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


def _feature_net(n_in: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(_linear(n_in, feature_dim, HIDDEN_GAIN), nn.LayerNorm(feature_dim), nn.ReLU())


def _embed(
    embedding: nn.Embedding, feature_net: nn.Sequential, features: torch.Tensor, blueprint_index: torch.Tensor
) -> torch.Tensor:
    """features [..., D] with each slot's blueprint embedding appended, through ``feature_net``."""
    embedded = embedding(blueprint_index).flatten(-2)
    return feature_net(torch.cat([features, embedded.to(features.dtype)], dim=-1))


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
        critic_trunk: str = "shared",
    ) -> None:
        super().__init__()
        if critic_trunk not in CRITIC_TRUNKS:
            raise ValueError(f"policy.options.critic_trunk must be one of {', '.join(CRITIC_TRUNKS)}; got {critic_trunk!r}")
        missing = [h for h in HEADS if h not in head_sizes]
        if missing:
            raise ValueError(f"PolicyNetwork: head_sizes lacks head(s) {missing}")
        for name, value in (("feature_dim", feature_dim), ("lstm_dim", lstm_dim), ("blueprint_embed_dim", blueprint_embed_dim)):
            if value < 1:
                raise ValueError(f"policy.options.{name} must be >= 1; got {value}")
        self.obs_dim, self.n_slots, self.lstm_dim = obs_dim, n_slots, lstm_dim
        self.critic_trunk = critic_trunk
        self.blueprint_embedding = nn.Embedding(n_blueprints, blueprint_embed_dim)
        self.feature_net = _feature_net(obs_dim + n_slots * blueprint_embed_dim, feature_dim)
        self.lstm = nn.LSTM(feature_dim, lstm_dim)
        self.post_norm = nn.LayerNorm(lstm_dim)
        half, quarter = max(1, lstm_dim // 2), max(1, lstm_dim // 4)
        self.heads = nn.ModuleDict(
            {
                head: _mlp([lstm_dim, lstm_dim, quarter, n] if head == "blueprint" else [lstm_dim, half, n])
                for head, n in ((h, int(head_sizes[h])) for h in HEADS)
            }
        )
        # "shared" registers no module here: its state dict keys (and initialisation) are those of old checkpoints.
        self.critic_embedding: nn.Embedding | None = None
        self.critic_feature_net: nn.Sequential | None = None
        critic_in = lstm_dim
        if critic_trunk == "own":
            self.critic_embedding = nn.Embedding(n_blueprints, blueprint_embed_dim)
            self.critic_feature_net = _feature_net(obs_dim + n_slots * blueprint_embed_dim, feature_dim)
            critic_in = feature_dim
        self.critic = _mlp(
            [critic_in, *(max(MIN_CRITIC_WIDTH, critic_in // d) for d in (2, 4, 8)), 1], layer_norm=True
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
        """Named groups for per-part gradient norms and the optimiser: trunk (the shared, recurrent one), one per
        head, critic (with ``critic_trunk="own"`` its own trunk too, so ``critic_lr``, ``critic_weight_decay`` and
        ``critic_max_grad_norm`` cover it), q (the diagnostic). Every parameter is in exactly one group."""
        trunk = [
            *self.blueprint_embedding.parameters(),
            *self.feature_net.parameters(),
            *self.lstm.parameters(),
            *self.post_norm.parameters(),
        ]
        groups = {"trunk": trunk}
        groups.update({head: list(self.heads[head].parameters()) for head in HEADS})
        own = [] if self.critic_embedding is None or self.critic_feature_net is None else [
            *self.critic_embedding.parameters(),
            *self.critic_feature_net.parameters(),
        ]
        groups["critic"] = [*own, *self.critic.parameters()]
        groups["q"] = list(self.q_head.parameters())
        return groups

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def initial_state(self, n_envs: int, device: torch.device | str | None = None) -> State:
        zeros = torch.zeros(1, n_envs, self.lstm_dim, device=device)
        return zeros, zeros.clone()

    # --------------------------------------------------------------------------------------- forward
    def embed(self, features: torch.Tensor, blueprint_index: torch.Tensor) -> torch.Tensor:
        return _embed(self.blueprint_embedding, self.feature_net, features, blueprint_index)

    def critic_embed(self, features: torch.Tensor, blueprint_index: torch.Tensor) -> torch.Tensor | None:
        """The own critic trunk's features [..., feature_dim] (no recurrence: any batch shape at once); None when
        the critic reads the shared trunk."""
        if self.critic_embedding is None or self.critic_feature_net is None:
            return None
        return _embed(self.critic_embedding, self.critic_feature_net, features, blueprint_index)

    def heads_forward(self, trunk: torch.Tensor, critic_input: torch.Tensor | None = None) -> NetworkOutput:
        """``critic_input``: the own critic trunk's output for the same steps (None: the critic reads ``trunk``)."""
        z = self.post_norm(trunk)
        logits = {head: self.heads[head](z) for head in HEADS}
        value = self.critic(z if critic_input is None else critic_input).squeeze(-1).float()
        q = self.q_head(z.detach()).float()
        return NetworkOutput(logits=logits, value=value, q=q)

    def step(self, features: torch.Tensor, blueprint_index: torch.Tensor, state: State) -> tuple[NetworkOutput, State]:
        """One env step for a batch: features [B, D], blueprint_index [B, S]."""
        x = self.embed(features, blueprint_index).unsqueeze(0)
        out, (h, c) = self.lstm(x, (state[0].to(x.dtype), state[1].to(x.dtype)))
        critic_input = self.critic_embed(features, blueprint_index)
        return self.heads_forward(out.squeeze(0), critic_input), (h.float(), c.float())

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
        critic_input = self.critic_embed(features, blueprint_index)  # all T x B steps at once: no state
        return self.heads_forward(torch.cat(outputs, dim=0), critic_input), (h.float(), c.float())


def segment_starts(reset_before: torch.Tensor) -> list[int]:
    """Host list of the steps where any env starts a new episode (always 0). One device sync."""
    any_reset = reset_before.any(dim=1)
    any_reset[0] = True
    return any_reset.nonzero().flatten().tolist()
