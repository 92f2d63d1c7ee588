"""Sampling joint actions head by head, so that every sampled joint action is legal.

The op is drawn first from the env-level op mask; the slot from the slots where that op is legal; the
blueprint and style from the entries the chosen slot supports; the value heads from full masks. The
masks used are returned for storage: the update must evaluate the stored actions under exactly these
masks (recomputing them from a later state gives impossible actions, -inf log-probs and NaN gradients).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import attrs
import torch
import torch.nn.functional as F

from esper_core.rl.distributions import MaskedCategorical
from esper_core.rl.masks import (
    MaskInputs,
    blueprint_mask,
    op_mask,
    slot_mask,
    slot_op_legality,
    style_mask,
    value_head_mask,
)
from esper_core.ops import HEADS, VALUE_HEADS


#: Heads sampled after op and slot, in HEADS order (their masks are fixed once op and slot are).
_LATER_HEADS = HEADS[2:]


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
    value = float(floors.get(head, 0.0))
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"probability floor for head {head!r} must lie in [0, 1]; got {value}")
    return value


def _grouped(
    logits: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    floors: Mapping[str, float],
    heads: Sequence[str],
) -> MaskedCategorical:
    """One distribution over several heads padded to a common width ([..., len(heads), width]; padding is
    masked out), each with its own floor: one set of tensor ops instead of one per head."""
    width = max(logits[h].shape[-1] for h in heads)
    stacked_logits = torch.stack([F.pad(logits[h].float(), (0, width - logits[h].shape[-1])) for h in heads], dim=-2)
    stacked_masks = torch.stack([F.pad(masks[h], (0, width - masks[h].shape[-1]), value=False) for h in heads], dim=-2)
    device = stacked_logits.device
    # Built from fills rather than torch.tensor(list, device=...): no host-to-device copy, no sync.
    floor = torch.cat([torch.full((1, 1), _floor(floors, h), device=device) for h in heads])
    return MaskedCategorical(stacked_logits, stacked_masks, floor)


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

    def draw(dist: MaskedCategorical) -> torch.Tensor:
        return dist.mode() if deterministic else dist.sample(generator)

    legality = slot_op_legality(inputs)
    masks = {"op": op_mask(inputs, legality)}
    op_dist = MaskedCategorical(logits["op"], masks["op"], _floor(floors, "op"))
    op = draw(op_dist)
    masks["slot"] = slot_mask(inputs, op, legality)
    slot_dist = MaskedCategorical(logits["slot"], masks["slot"], _floor(floors, "slot"))
    slot = draw(slot_dist)
    # The remaining heads depend on op and slot only through their masks: sample them together.
    masks["blueprint"] = blueprint_mask(inputs, slot)
    masks["style"] = style_mask(inputs, slot)
    for head in VALUE_HEADS:
        masks[head] = value_head_mask(inputs.n_envs, inputs.head_sizes[head], inputs.device)
    later = _grouped(logits, masks, floors, _LATER_HEADS)
    later_actions = draw(later)

    actions = torch.cat([op.unsqueeze(-1), slot.unsqueeze(-1), later_actions], dim=-1)
    log_probs = torch.cat(
        [op_dist.log_prob(op).unsqueeze(-1), slot_dist.log_prob(slot).unsqueeze(-1), later.log_prob(later_actions)],
        dim=-1,
    )
    entropy = torch.cat([op_dist.entropy().unsqueeze(-1), slot_dist.entropy().unsqueeze(-1), later.entropy()], dim=-1)
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
    dist = _grouped(logits, masks, floors, HEADS)
    return dist.log_prob(actions), dist.entropy()
