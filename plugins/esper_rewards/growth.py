"""The ``growth`` reward: what the seeds add over the same network without them, minus what they cost.

Why not ``contribution``: it credits each seed with its counterfactual capped by the validation gain since
the seed was germinated, and that gain is mostly the host learning on its own, so seeds are paid for
progress that would have come anyway. Here the reference is the network itself with every seed it grew
(fossils included) switched off at once, measured on the same samples after every step
(``EnvObservation.val_acc_without_growth``). Let ``G = val_acc - val_acc_without_growth``: the accuracy
the grown parts add right now. Components (reported every step, the value is their sum):

- ``growth``: ``gain_scale x (G_after - G_before)``. A potential difference: over an episode it sums to
  ``gain_scale x G_final`` (nothing is grown at the start), a seed grown and pruned again nets exactly 0,
  and host progress that lifts both sides equally pays nothing.
- ``cost``: at ``done``, ``-param_cost x`` (parameters of every seed still in the network) / (base host
  parameters): the size the grown network ends with.

So the return is ``gain_scale x G_final - param_cost x size_share_final``: an episode that never grows
scores exactly 0, and a grown network scores above 0 only if its seeds add more accuracy than their size
costs. Design and limits: docs/design/growth-and-rewards.md, "The growth reward".
"""

from __future__ import annotations

import attrs
from attrs import validators as v

from esper_core.records import EnvObservation, RewardInputs
from esper_core.specs import RewardSpec

from esper_rewards.rent import seed_param_share

COMPONENTS: tuple[str, ...] = ("growth", "cost")

_non_negative = [v.instance_of((int, float)), v.ge(0.0)]


@attrs.frozen(kw_only=True)
class GrowthOptions:
    gain_scale: float = attrs.field(
        default=10.0, validator=_non_negative,
        metadata={"help": "reward units per unit of accuracy fraction the grown seeds add (10: one point = 0.1)"},
    )
    # 0.5: what a larger static host gains per parameter. On the study's task, doubling resnet_impaired's
    # parameters statically gains about 4.5 validation points (docs/results/2026-11-24-h100-growth-study-3/),
    # so growth priced below that (0.2 was 2 points) was paid for networks no better than a wider static one.
    param_cost: float = attrs.field(
        default=0.5, validator=_non_negative,
        metadata={"help": "one-off charge at the end per unit of (seed parameters / base host parameters); with "
                          "gain_scale 10, 0.5 prices doubling the host at 5 accuracy points. Set it to what a "
                          "static host of your own gains per doubling (validation points / 10), so growth pays "
                          "only where it beats a wider static network"},
    )


def growth_gain(obs: EnvObservation) -> float:
    """Validation accuracy the grown seeds add over the same network with all of them at alpha 0."""
    if obs.val_acc_without_growth is None:
        raise ValueError(
            "the growth reward needs EnvObservation.val_acc_without_growth, and this observation has none: the "
            "env did not measure the no-growth reference (it does so for a reward with measures_growth = True)"
        )
    return obs.val_acc - obs.val_acc_without_growth


class GrowthReward:
    """Stateless between steps (both potentials come from the observations); one instance per env."""

    #: Asks the env to measure ``val_acc_without_growth`` every step (one extra validation pass while a
    #: seed is blended in).
    measures_growth = True

    def __init__(self, options: GrowthOptions | None = None) -> None:
        self.options = options if options is not None else GrowthOptions()
        self.episode_return = 0.0

    def reset(self) -> None:
        self.episode_return = 0.0

    def __call__(self, inputs: RewardInputs) -> tuple[float, dict[str, float]]:
        opts = self.options
        gain = opts.gain_scale * (growth_gain(inputs.after) - growth_gain(inputs.before))
        cost = -opts.param_cost * seed_param_share(inputs.after, fossilized_factor=1.0) if inputs.done else 0.0
        components = {"growth": gain, "cost": cost}
        value = gain + cost
        self.episode_return += value
        return value, components


SPEC = RewardSpec(
    name="growth",
    description="Accuracy the grown seeds add over the same network with all of them switched off (a "
    "no-growth reference, measured every step), minus the size they end with.",
    factory=GrowthReward,
    options_type=GrowthOptions,
)
