"""Value normalisation for ppo_v2's critic (``policy.options.value_norm``).

Why: the critic regresses returns whose scale depends on the reward and drifts as the policy learns; with
the raw scale the value loss (and its share of the shared trunk's gradient) is large when returns are
large and vanishes when they are small. With normalisation the critic head predicts returns in units of
their running standard deviation around their running mean, so its loss has the same scale whatever the
reward.

- Statistics are exact over every return seen so far (count, mean and sum of squared deviations merged
  batch by batch in float64), so they do not depend on how the returns were split into updates.
- The critic's output layer is rescaled whenever the statistics move (as in PopArt): the denormalised
  value ``V(s) = head(s) * std + mean`` is the same just before and just after, so storing values in
  return units (what acting and GAE use) stays consistent.
- The statistics are part of the policy's state dict (exact resume).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

#: Smallest standard deviation used to scale: returns that barely vary (a policy that never grows under
#: the ``growth`` reward gets exactly 0) must not blow normalised targets up. In reward units (0.01 is a
#: tenth of an accuracy point at the default reward scales).
MIN_STD = 1e-2


class ValueNormaliser:
    """Running mean / std of returns (float64) and the PopArt-style rescale of the critic's output layer."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.mean = torch.zeros((), dtype=torch.float64, device=device)
        self.m2 = torch.zeros((), dtype=torch.float64, device=device)

    @property
    def std(self) -> torch.Tensor:
        var = torch.where(self.count > 0, self.m2 / self.count.clamp(min=1.0), torch.ones_like(self.m2))
        return var.sqrt().clamp(min=MIN_STD)

    def update(self, returns: torch.Tensor) -> None:
        """Merge a batch of returns into the statistics (Chan et al.'s parallel mean/variance)."""
        x = returns.detach().reshape(-1).to(torch.float64)
        n = float(x.numel())
        if n == 0:
            return
        batch_mean = x.mean()
        batch_m2 = (x - batch_mean).square().sum()
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + batch_m2 + delta.square() * self.count * n / total
        self.count = total

    def update_preserving(self, returns: torch.Tensor, output: nn.Linear) -> None:
        """``update``, then rescale ``output`` (the critic's last layer, one output) so that every
        denormalised value it produces is unchanged by the new statistics."""
        old_mean, old_std = self.mean.clone(), self.std.clone()
        self.update(returns)
        new_mean, new_std = self.mean, self.std
        with torch.no_grad():
            weight, bias = output.weight, output.bias
            ratio = (old_std / new_std).to(weight.dtype)
            weight.mul_(ratio)
            bias.copy_(((old_std * bias.to(torch.float64) + old_mean - new_mean) / new_std).to(bias.dtype))

    def normalise(self, values: torch.Tensor) -> torch.Tensor:
        return ((values.to(torch.float64) - self.mean) / self.std).to(values.dtype)

    def denormalise(self, values: torch.Tensor) -> torch.Tensor:
        return (values.to(torch.float64) * self.std + self.mean).to(values.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"count": self.count.clone(), "mean": self.mean.clone(), "m2": self.m2.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = [k for k in ("count", "mean", "m2") if k not in state]
        if missing:
            raise KeyError(f"ppo_v2 value normaliser state lacks key(s) {missing}; got {sorted(state)}")
        device = self.mean.device
        self.count = torch.as_tensor(state["count"], dtype=torch.float64).to(device)
        self.mean = torch.as_tensor(state["mean"], dtype=torch.float64).to(device)
        self.m2 = torch.as_tensor(state["m2"], dtype=torch.float64).to(device)
