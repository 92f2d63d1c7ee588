"""GAE and the factored-PPO pieces that depend on causal head relevance.

Each head is credited only for the steps where its choice changed what happened (per-head advantage =
advantage x relevance), and the joint log-ratio sums only the relevant heads' log-ratios, so a head's
random draw on a step where it was ignored neither moves its parameters nor the PPO ratio.
"""

from __future__ import annotations

import torch

from esper_core.rl.masks import head_relevance


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    truncated: torch.Tensor,
    bootstrap_values: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, time-major [T, E], each env on its own.

    Step t's reward follows action t. ``dones[t]``: the episode ended at t (terminal: no bootstrap).
    ``truncated[t]``: the episode was cut at t (time limit): bootstrap with ``bootstrap_values[t]`` =
    V(s_{t+1}) of the cut-off state. Either way nothing flows back from step t+1, which belongs to the
    next episode. ``done`` wins when both are set. ``last_values`` [E] = V(s_T) after the last step.
    Returns (advantages, returns = advantages + values).
    """
    if rewards.dim() != 2:
        raise ValueError(f"gae expects time-major [T, E] tensors; rewards has shape {tuple(rewards.shape)}")
    same_shape = {"values": values, "dones": dones, "truncated": truncated, "bootstrap_values": bootstrap_values}
    for name, tensor in same_shape.items():
        if tensor.shape != rewards.shape:
            raise ValueError(f"gae: {name} has shape {tuple(tensor.shape)}, rewards {tuple(rewards.shape)}")
    if last_values.shape != rewards.shape[1:]:
        raise ValueError(f"gae: last_values must be [E={rewards.shape[1]}]; got {tuple(last_values.shape)}")
    rewards, values = rewards.float(), values.float()
    terminal = dones.bool()
    cut = truncated.bool() & ~terminal
    next_values = torch.cat([values[1:], last_values.float().unsqueeze(0)], dim=0)
    next_values = torch.where(cut, bootstrap_values.float(), next_values)
    next_values = torch.where(terminal, torch.zeros_like(next_values), next_values)
    deltas = rewards + gamma * next_values - values
    carry = (gamma * lam) * (~(terminal | cut)).float()
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages, advantages + values


def per_head_advantages(advantages: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """[...] x ops [...] -> [..., H]: the shared advantage where a head is relevant, exactly 0 elsewhere."""
    relevance = head_relevance(ops)
    shared = advantages.unsqueeze(-1).expand(relevance.shape)
    return torch.where(relevance, shared, torch.zeros_like(shared))


def joint_log_ratio(new_log_probs: torch.Tensor, old_log_probs: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """Sum over relevant heads of (new - old) log-probs [..., H] -> [...]; irrelevant heads add exactly 0."""
    relevance = head_relevance(ops)
    diff = new_log_probs - old_log_probs
    return torch.where(relevance, diff, torch.zeros_like(diff)).sum(-1)


def clipped_surrogate(log_ratio: torch.Tensor, advantages: torch.Tensor, clip_ratio: float) -> torch.Tensor:
    """PPO's clipped objective per sample (to maximise), with the *joint* ratio clipped as a whole:
    per-head ratios of 1.15 each look harmless but make a joint ratio of 3 over eight heads."""
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1.0 - clip_ratio, 1.0 + clip_ratio)
    return torch.minimum(ratio * advantages, clipped * advantages)


def normalise_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit std over the whole rollout (call once per update, not per minibatch)."""
    if advantages.numel() < 2:
        return advantages - advantages.mean()
    return (advantages - advantages.mean()) / (advantages.std() + eps)


def relevant_head_means(per_head: torch.Tensor, ops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of a per-head quantity [..., H] over the steps where each head was relevant, and the counts.

    For diagnostics such as conditional entropy: averaging a sparse head over all steps dilutes it ~20x.
    A head never relevant in the batch gets mean 0 and count 0. No host sync.
    """
    relevance = head_relevance(ops)
    flat_values = per_head.reshape(-1, per_head.shape[-1])
    flat_relevance = relevance.reshape(-1, relevance.shape[-1])
    counts = flat_relevance.sum(0)
    sums = torch.where(flat_relevance, flat_values, torch.zeros_like(flat_values)).sum(0)
    return sums / counts.clamp(min=1).to(sums.dtype), counts
