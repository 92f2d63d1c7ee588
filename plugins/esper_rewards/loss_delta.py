"""A dense, seed-agnostic alternative: reward the drop in validation loss, charge rent for the seeds.

Components: ``loss_delta`` (loss_scale x (val_loss before - after), clipped to +/- max_abs_delta so one
noisy epoch cannot dominate an episode) and ``rent`` (as in ``contribution``).
"""

from __future__ import annotations

import attrs
from attrs import validators as v

from esper_core.records import RewardInputs
from esper_core.specs import RewardSpec

from esper_rewards.rent import seed_param_share

_non_negative = [v.instance_of((int, float)), v.ge(0.0)]


@attrs.frozen(kw_only=True)
class LossDeltaOptions:
    loss_scale: float = attrs.field(
        default=1.0, validator=_non_negative, metadata={"help": "reward units per unit of validation-loss decrease"}
    )
    max_abs_delta: float = attrs.field(
        default=1.0, validator=[v.instance_of((int, float)), v.gt(0.0)],
        metadata={"help": "bound on |loss_delta| per step (reward units)"},
    )
    rent_coef: float = attrs.field(
        default=0.2, validator=_non_negative,
        metadata={"help": "rent per step per unit of (seed parameters / host parameters)"},
    )
    fossilized_rent_factor: float = attrs.field(
        default=1.0, validator=_non_negative, metadata={"help": "rent multiplier for fossilized seeds"}
    )


class LossDeltaReward:
    """Stateless apart from the running episode return."""

    def __init__(self, options: LossDeltaOptions | None = None) -> None:
        self.options = options if options is not None else LossDeltaOptions()
        self.episode_return = 0.0

    def reset(self) -> None:
        self.episode_return = 0.0

    def __call__(self, inputs: RewardInputs) -> tuple[float, dict[str, float]]:
        opts = self.options
        drop = opts.loss_scale * (inputs.before.val_loss - inputs.after.val_loss)
        components = {
            "loss_delta": max(-opts.max_abs_delta, min(opts.max_abs_delta, drop)),
            "rent": -opts.rent_coef * seed_param_share(inputs.after, opts.fossilized_rent_factor),
        }
        value = sum(components.values())
        self.episode_return += value
        return value, components


SPEC = RewardSpec(
    name="loss_delta",
    description="Decrease in validation loss each step, minus parameter rent for the seeds.",
    factory=LossDeltaReward,
    options_type=LossDeltaOptions,
)
