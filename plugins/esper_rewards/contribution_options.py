"""Options of the ``contribution`` reward. Every coefficient is a named option; these defaults are the one
source of truth (reward units: 1.0 = ``accuracy_scale`` x one unit of accuracy fraction, i.e. with the
default scale 0.1 per accuracy point)."""

from __future__ import annotations

import attrs
from attrs import validators as v

from esper_core.stages import SeedStage

_non_negative = [v.instance_of((int, float)), v.ge(0.0)]
_fraction = [v.instance_of((int, float)), v.ge(0.0), v.le(1.0)]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.frozen(kw_only=True)
class ContributionOptions:
    accuracy_scale: float = attrs.field(
        default=10.0, validator=_non_negative,
        metadata=_help("reward units per unit of accuracy fraction (counterfactual contribution, fossilize and hindsight)"),
    )
    rent_coef: float = attrs.field(
        default=0.2, validator=_non_negative,
        metadata=_help("rent per step per unit of (seed parameters / host parameters): a seed of 5% of the host "
                       "costs 0.01/step"),
    )
    fossilized_rent_factor: float = attrs.field(
        default=1.0, validator=_non_negative,
        metadata=_help("rent multiplier for fossilized seeds (1.0: fossilizing never escapes rent)"),
    )
    alpha_shock_coef: float = attrs.field(
        default=0.1, validator=_non_negative,
        metadata=_help("cost per unit of summed squared alpha change (instant 1 -> 0 prune: 0.1; over 4 steps: 0.025)"),
    )
    shaping_gamma: float = attrs.field(
        default=0.995, validator=[v.instance_of((int, float)), v.gt(0.0), v.le(1.0)],
        metadata=_help("discount of the shaping term; keep it equal to the policy's gamma for policy invariance"),
    )
    # Stage potentials Phi (>= 0; DORMANT and the prune stages are pinned to 0, see shaping.py).
    potential_germinated: float = attrs.field(
        default=0.02, validator=_non_negative, metadata=_help("shaping potential of a GERMINATED seed")
    )
    potential_training: float = attrs.field(
        default=0.02, validator=_non_negative, metadata=_help("shaping potential of a TRAINING seed")
    )
    potential_blending: float = attrs.field(
        default=0.04, validator=_non_negative, metadata=_help("shaping potential of a BLENDING seed")
    )
    potential_holding: float = attrs.field(
        default=0.06, validator=_non_negative, metadata=_help("shaping potential of a HOLDING seed")
    )
    potential_fossilized: float = attrs.field(
        default=0.06, validator=_non_negative,
        metadata=_help("shaping potential of a FOSSILIZED seed; equal to HOLDING so fossilizing itself earns no "
                       "shaping: only helpfulness is paid"),
    )
    fossilize_min_contribution: float = attrs.field(
        default=0.005, validator=v.instance_of((int, float)),
        metadata=_help("FOSSILIZE is rewarded only if the seed's contribution exceeds this (accuracy fraction, "
                       "0.005 = 0.5 pt)"),
    )
    fossilize_min_improvement: float = attrs.field(
        default=0.0, validator=v.instance_of((int, float)),
        metadata=_help("... and validation accuracy rose by more than this since the seed was germinated"),
    )
    fossilize_bonus_coef: float = attrs.field(
        default=1.0, validator=_non_negative,
        metadata=_help("bonus for a helpful fossilization, in multiples of its credited contribution (x accuracy_scale)"),
    )
    fossilize_penalty: float = attrs.field(
        default=0.1, validator=_non_negative,
        metadata=_help("penalty for fossilizing a seed that did not help (fossilization is irreversible)"),
    )
    hindsight_share: float = attrs.field(
        default=0.25, validator=_fraction,
        metadata=_help("hindsight: share of a helpful fossilized seed's credited contribution paid per scaffold "
                       "(a seed pruned shortly before in another slot)"),
    )
    # A slot needs ~11 steps from prune through embargo, regrowth and blending to fossilization under the
    # default lifecycle.
    hindsight_window: int = attrs.field(
        default=20, validator=[v.instance_of(int), v.ge(1)],
        metadata=_help("hindsight pays for seeds pruned at most this many steps before the fossilization"),
    )
    hindsight_cap: float = attrs.field(
        default=0.1, validator=_non_negative,
        metadata=_help("hindsight never pays more than this in total per fossilization (reward units)"),
    )
    terminal_coef: float = attrs.field(
        default=1.0, validator=_non_negative,
        metadata=_help("terminal bonus per unit of final validation accuracy, paid at done"),
    )

    def stage_potentials(self) -> dict[SeedStage, float]:
        return {
            SeedStage.GERMINATED: self.potential_germinated,
            SeedStage.TRAINING: self.potential_training,
            SeedStage.BLENDING: self.potential_blending,
            SeedStage.HOLDING: self.potential_holding,
            SeedStage.FOSSILIZED: self.potential_fossilized,
        }
