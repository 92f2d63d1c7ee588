"""The sparsest honest signal: nothing until the episode ends, then final accuracy minus the added capacity.

Components (reported every step, 0 before ``done``): ``terminal`` (terminal_coef x final validation
accuracy) and ``rent`` (-rent_coef x parameters the seeds added, live or fossilized, relative to the host).
Useful as a baseline: any denser reward should beat it at equal budgets.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

from esper_core.records import RewardInputs
from esper_core.specs import RewardSpec

from esper_rewards.rent import seed_param_share

_non_negative = [v.instance_of((int, float)), v.ge(0.0)]


@attrs.frozen(kw_only=True)
class SparseOptions:
    terminal_coef: float = attrs.field(
        default=1.0, validator=_non_negative, metadata={"help": "reward per unit of final validation accuracy"}
    )
    rent_coef: float = attrs.field(
        default=0.1, validator=_non_negative,
        metadata={"help": "one-off charge per unit of (added parameters / host parameters) at the end "
                          "(0.1: +5% params = -0.005)"},
    )


class SparseReward:
    def __init__(self, options: SparseOptions | None = None) -> None:
        self.options = options if options is not None else SparseOptions()
        self.episode_return = 0.0

    def reset(self) -> None:
        self.episode_return = 0.0

    def __call__(self, inputs: RewardInputs) -> tuple[float, dict[str, float]]:
        opts = self.options
        if inputs.done:
            components = {
                "terminal": opts.terminal_coef * inputs.after.val_acc,
                "rent": -opts.rent_coef * seed_param_share(inputs.after, fossilized_factor=1.0),
            }
        else:
            components = {"terminal": 0.0, "rent": 0.0}
        value = sum(components.values())
        self.episode_return += value
        return value, components


SPEC = RewardSpec(
    name="sparse",
    description="Zero every step; at the end, final validation accuracy minus the rent of added parameters.",
    factory=SparseReward,
    options_type=SparseOptions,
)
