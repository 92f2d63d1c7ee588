"""Sampling joint actions head by head, so that every sampled joint action is legal.

The op is drawn first from the env-level op mask; the slot from the slots where that op is legal; the
blueprint and style from the entries the chosen slot supports; the value heads from full masks. The
masks used are returned for storage: the update must evaluate the stored actions under exactly these
masks (recomputing them from a later state gives impossible actions, -inf log-probs and NaN gradients).
"""

from __future__ import annotations

from typing import Mapping

import attrs
import torch

from esper_core.distributions import MaskedCategorical
from esper_core.masks import MaskInputs, blueprint_mask, op_mask, slot_mask, slot_op_legality, style_mask, value_head_mask
from esper_core.ops import HEADS


@attrs.frozen(kw_only=True, eq=False)
class SampledActions:
    """``actions`` int64 [E, H]; ``log_probs``, ``entropy`` (normalised) float32 [E, H] in ``HEADS``
    order; ``masks`` head -> bool [E, n], the masks each head was sampled under."""

    actions: torch.Tensor
    log_probs: torch.Tensor
    entropy: torch.Tensor
    masks: dict[str, torch.Tensor]


def _check_logits(logits: Mapping[str, torch.Tensor], n_envs: int | None = None) -> None:
    missing = [h for h in HEADS if h not in logits]
    if missing:
        raise ValueError(f"logits are missing head(s) {missing}; expected one tensor per head {HEADS}")
    if n_envs is not None:
        wrong = {h: tuple(logits[h].shape) for h in HEADS if logits[h].dim() != 2 or logits[h].shape[0] != n_envs}
        if wrong:
            raise ValueError(f"logits must be [envs={n_envs}, n] per head; got {wrong}")


def _floor(floors: Mapping[str, float], head: str) -> float:
    return float(floors.get(head, 0.0))


def sample_actions(
    logits: Mapping[str, torch.Tensor],
    inputs: MaskInputs,
    floors: Mapping[str, float],
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> SampledActions:
    """Draw one legal joint action per env (``deterministic``: the mode of each conditional head)."""
    _check_logits(logits, inputs.n_envs)
    wrong = {h: (logits[h].shape[1], n) for h, n in inputs.head_sizes.items() if logits[h].shape[1] != n}
    if wrong:
        raise ValueError(f"logit widths differ from the action space (head: (logits, space)): {wrong}")
    legality = slot_op_legality(inputs)
    chosen: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    dists: dict[str, MaskedCategorical] = {}

    def draw(head: str, mask: torch.Tensor) -> torch.Tensor:
        dist = MaskedCategorical(logits[head], mask, _floor(floors, head))
        masks[head], dists[head] = mask, dist
        chosen[head] = dist.mode() if deterministic else dist.sample(generator)
        return chosen[head]

    op = draw("op", op_mask(inputs, legality))
    slot = draw("slot", slot_mask(inputs, op, legality))
    draw("blueprint", blueprint_mask(inputs, slot))
    draw("style", style_mask(inputs, slot))
    for head in ("tempo", "alpha_target", "alpha_speed", "alpha_curve"):
        draw(head, value_head_mask(inputs.n_envs, inputs.head_sizes[head], inputs.device))

    actions = torch.stack([chosen[h] for h in HEADS], dim=-1)
    log_probs = torch.stack([dists[h].log_prob(chosen[h]) for h in HEADS], dim=-1)
    entropy = torch.stack([dists[h].entropy() for h in HEADS], dim=-1)
    return SampledActions(actions=actions, log_probs=log_probs, entropy=entropy, masks={h: masks[h] for h in HEADS})


def evaluate_actions(
    logits: Mapping[str, torch.Tensor],
    actions: torch.Tensor,
    masks: Mapping[str, torch.Tensor],
    floors: Mapping[str, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and normalised entropies [..., H] of stored ``actions`` [..., H] under the stored ``masks``.

    Every head is evaluated, relevant or not: the joint log-ratio drops irrelevant heads by relevance,
    while the entropy bonus must reach every head at every step.
    """
    _check_logits(logits)
    missing = [h for h in HEADS if h not in masks]
    if missing:
        raise ValueError(f"stored masks are missing head(s) {missing}")
    log_probs, entropies = [], []
    for i, head in enumerate(HEADS):
        dist = MaskedCategorical(logits[head], masks[head], _floor(floors, head))
        log_probs.append(dist.log_prob(actions[..., i]))
        entropies.append(dist.entropy())
    return torch.stack(log_probs, dim=-1), torch.stack(entropies, dim=-1)
