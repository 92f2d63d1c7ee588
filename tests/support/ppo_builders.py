"""Tiny ppo_v2 policies and rollouts for the ppo_v2 tests (slot game, CPU, small widths)."""

from __future__ import annotations

import io
from typing import Any

import torch

from esper_core.records import PolicyContext
from esper_policies.ppo_v2 import SPEC, PPOV2Options, PPOV2Policy
from support.slot_game import EPISODE_LENGTH, SlotGame, game_context, play_round

#: Small widths and a faster learning rate: the slot game needs no more, and CPU tests stay quick.
TINY: dict[str, Any] = {"feature_dim": 16, "lstm_dim": 16, "blueprint_embed_dim": 2, "lr": 3e-3}


def tiny_ppo(**changes: Any) -> dict[str, Any]:
    """ppo_v2 options: ``TINY`` with ``changes`` on top."""
    return {**TINY, **changes}


def policy(
    n_envs: int = 4,
    seed: int = 0,
    ppo: dict[str, Any] | None = None,
    device: str = "cpu",
    episode_length: int = EPISODE_LENGTH,
    **options: Any,
) -> PPOV2Policy:
    """A ppo_v2 policy on the slot game; ``ppo`` (default ``TINY``) and ``options`` are its options."""
    context = game_context(n_envs, seed, device, episode_length)
    return SPEC.factory(PPOV2Options(**{**(TINY if ppo is None else ppo), **options}), context)


def policy_for(context: PolicyContext, **options: Any) -> PPOV2Policy:
    return SPEC.factory(PPOV2Options(**options), context)


def games(n_envs: int = 4, seed: int = 0, episode_length: int = EPISODE_LENGTH) -> list[SlotGame]:
    return [SlotGame(seed * 1000 + i, episode_length) for i in range(n_envs)]


def rollout(p: PPOV2Policy, n_envs: int = 4, seed: int = 0) -> Any:
    return play_round(p, games(n_envs, seed)).rollout


def round_trip(state: dict[str, Any]) -> dict[str, Any]:
    """Through bytes, as a checkpoint would: only tensors and plain containers survive weights_only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def head_parameters(p: PPOV2Policy, head: str) -> torch.Tensor:
    return torch.cat([q.detach().flatten().clone() for q in p.network.heads[head].parameters()])


def assert_continues_identically(a: PPOV2Policy, b: PPOV2Policy) -> None:
    """``b`` (loaded from ``a``'s state) plays and learns exactly as ``a`` from here: same weights, the same
    round of games, the same values, actions and value loss, the same weights after one update."""
    for (name, pa), pb in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        assert torch.equal(pa, pb), name
    result_a, result_b = play_round(a, games(4, seed=3)), play_round(b, games(4, seed=3))
    assert torch.equal(result_a.rollout.values, result_b.rollout.values)
    assert torch.equal(result_a.rollout.actions, result_b.rollout.actions)
    metrics_a, metrics_b = a.update(result_a.rollout), b.update(result_b.rollout)
    assert metrics_a["value_loss"] == metrics_b["value_loss"]
    for (name, pa), pb in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        assert torch.equal(pa, pb), name
