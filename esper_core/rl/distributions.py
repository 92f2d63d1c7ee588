"""A categorical distribution over the valid entries of one action head, with a probability floor.

Why each choice:
- Math runs in float32 whatever the logits' dtype (bf16 under autocast has too few mantissa bits for
  stable log-softmax). Logits are clamped to +-1e6 so that differences of extreme logits stay finite.
- Invalid entries get the finite logit ``INVALID_LOGIT`` (-1e4, representable in bf16) after the valid
  logits are shifted so their maximum is 0: exp(-1e4) underflows to exactly 0 in float32, so invalid
  entries carry no mass, and no -inf enters any arithmetic that autograd differentiates (no NaN
  gradients). Their probability is then set to exactly 0 and their log-probability to -inf.
- The floor (docs/design/ppo-lessons.md, "Why a probability floor and not an entropy penalty"): valid
  probabilities are ``f + (1 - f * n_valid) * softmax``,
  so every valid entry keeps at least ``f`` and gradients still reach every logit through the softmax
  (a clamp would cut them). Sampling, ``log_prob``, ``entropy`` and ``mode`` all use this one floored
  distribution. When ``f * n_valid > 1`` (more valid entries than the floor can serve) the floor is
  lowered to ``1 / n_valid`` for that row, i.e. the distribution becomes uniform over the valid entries:
  the largest floor that can be honoured. No error is raised because n_valid changes from step to step.
- Entropy is normalised by log(n_valid), so it lies in [0, 1] whatever the head's width, and is 0
  when only one entry is valid (there is nothing to explore).
"""

from __future__ import annotations

import functools
import math

import torch

#: Logit given to invalid entries (finite, representable in bf16, exp() of it is 0 in float32).
INVALID_LOGIT = -1e4
#: Logits are clamped to this magnitude before any arithmetic.
LOGIT_LIMIT = 1e6


class MaskedCategorical:
    """Categorical over ``mask``-valid entries of ``logits`` [..., n] with a probability floor.

    ``floor`` is a float, or a float32 tensor broadcastable to ``logits.shape[:-1] + (1,)`` so several
    heads padded to one width can be handled in one call, each with its own floor (a tensor floor is not
    range-checked: checking would cost a device sync).
    """

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor, floor: float | torch.Tensor = 0.0) -> None:
        if logits.shape != mask.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and mask {tuple(mask.shape)} must have the same shape")
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor; got {mask.dtype}")
        if not isinstance(floor, torch.Tensor) and not 0.0 <= floor <= 1.0:
            raise ValueError(f"probability floor must lie in [0, 1]; got {floor}")
        self.mask = mask
        self.floor = floor
        logits = logits.float().clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
        # Shift so the largest valid logit is 0 (a constant shift: no effect on gradients or probabilities).
        shift = torch.where(mask, logits, -math.inf).amax(-1, keepdim=True).detach()
        shift = torch.where(torch.isfinite(shift), shift, 0.0)  # rows with no valid entry
        masked = torch.where(mask, logits - shift, INVALID_LOGIT)
        self.masked_logits = masked
        softmax_log = masked - torch.logsumexp(masked, dim=-1, keepdim=True)
        self.n_valid = mask.sum(-1, keepdim=True)
        if isinstance(floor, torch.Tensor) or floor > 0.0:
            n_valid = self.n_valid.to(masked.dtype).clamp(min=1.0)
            requested = floor.to(masked.dtype) if isinstance(floor, torch.Tensor) else torch.full_like(n_valid, floor)
            floor_t = torch.minimum(requested, 1.0 / n_valid)
            scale = (1.0 - floor_t * n_valid).clamp(min=0.0)
            # log(f + c * softmax) in log space: stays finite when f underflows in float32 (or is 0 for
            # some heads of a tensor floor) and keeps the softmax's precision for tiny probabilities.
            valid_log = torch.logaddexp(torch.log(floor_t), torch.log(scale) + softmax_log)
        else:
            valid_log = softmax_log
        # ``valid_log`` is finite everywhere; invalid entries are replaced by constants, so their (zero)
        # gradients never meet an infinity.
        self._valid_log = valid_log

    @functools.cached_property
    def log_probs(self) -> torch.Tensor:
        """Log-probabilities [..., n]; -inf at invalid entries."""
        return torch.where(self.mask, self._valid_log, -math.inf)

    @functools.cached_property
    def probs(self) -> torch.Tensor:
        """Probabilities [..., n]; exactly 0 at invalid entries, >= the floor at valid ones."""
        return torch.where(self.mask, self._valid_log.exp(), 0.0)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``actions`` (int64, batch shape or sample shape + batch shape); -inf for an
        invalid action (probability 0)."""
        table = self.log_probs
        if actions.shape != table.shape[:-1]:
            table = table.expand(*actions.shape, table.shape[-1])
        return table.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        """Normalised entropy [...] in [0, 1]: H / log(n_valid), 0 with a single valid entry."""
        plogp = torch.where(self.mask, self._valid_log.exp() * self._valid_log, 0.0)
        entropy = -plogp.sum(-1)
        n_valid = self.n_valid.squeeze(-1)
        log_n = torch.log(n_valid.clamp(min=2).to(entropy.dtype))
        return torch.where(n_valid > 1, entropy / log_n, 0.0).clamp(0.0, 1.0)

    def mode(self) -> torch.Tensor:
        """Most probable valid entry [...] (the floor never changes which one that is)."""
        return self.masked_logits.argmax(-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw [...] from the floored distribution (Gumbel-max on its log-probabilities)."""
        log_probs = self.log_probs.detach()
        uniform = torch.rand(log_probs.shape, generator=generator, device=log_probs.device, dtype=log_probs.dtype)
        tiny = torch.finfo(uniform.dtype).tiny
        gumbel = -torch.log(-torch.log(uniform.clamp(min=tiny, max=1.0 - 1e-7)))
        return (log_probs + gumbel).argmax(-1)
