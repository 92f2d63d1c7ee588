"""Options of the ``ppo_v2`` policy that are not PPO hyperparameters (those live in ``PPOConfig``):
how the rollout is split into gradient steps and when a diagnostic becomes a warning."""

from __future__ import annotations

from typing import Any

import attrs
from attrs import validators as v

from esper_core.ops import HEADS


def _default_entropy_warn() -> dict[str, float]:
    # Normalised entropy over the steps where a head decides (relevant, > 1 valid entry). With the default
    # probability floors a healthy head stays far above these; hitting them means the floor is off or broken.
    return {head: 0.1 for head in HEADS}


def _thresholds(value: Any) -> dict[str, float]:
    thresholds = _default_entropy_warn()
    unknown = sorted(set(value) - set(HEADS))
    if unknown:
        raise ValueError(f"policy.options.entropy_warn: unknown head(s) {unknown}; heads are {list(HEADS)}")
    thresholds.update({head: float(x) for head, x in dict(value).items()})
    return thresholds


@attrs.frozen(kw_only=True)
class PPOV2Options:
    #: Gradient steps per epoch: the envs are split into this many groups of whole sequences (at most one
    #: group per env). Each sample is still used once per epoch, so hidden states never go stale; with a
    #: single group, the default one epoch would be one Adam step per round (KL ~ 1e-8 at lr 3e-4).
    minibatches: int = attrs.field(default=4, validator=[v.instance_of(int), v.ge(1)])
    #: Warn when a head's conditional normalised entropy falls below its threshold (head -> value).
    entropy_warn: dict[str, float] = attrs.field(factory=_default_entropy_warn, converter=_thresholds)
    #: Warn / critical when a head's ratio (max, or 1/min) passes these (DESIGN-NOTES: 3 and 10).
    ratio_warn: float = attrs.field(default=3.0, validator=[v.instance_of((int, float)), v.gt(1.0)])
    ratio_critical: float = attrs.field(default=10.0, validator=[v.instance_of((int, float)), v.gt(1.0)])
    #: A head whose ratio stays within [1 - band, 1 + band] on every decision did not change: warn.
    unchanged_band: float = attrs.field(default=0.01, validator=[v.instance_of((int, float)), v.ge(0.0)])
    #: Warn when the pre-clip gradient norm exceeds this multiple of ppo.max_grad_norm (constant clipping).
    grad_clip_warn_factor: float = attrs.field(default=10.0, validator=[v.instance_of((int, float)), v.gt(1.0)])
    #: Warn when a clamped observation feature sits at its bound on more than this fraction of steps.
    saturation_warn: float = attrs.field(default=0.5, validator=[v.instance_of((int, float)), v.ge(0.0), v.le(1.0)])
