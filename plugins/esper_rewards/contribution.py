"""The default reward: accuracy the seeds are credited with, minus what they cost, plus lifecycle shaping.

r_t scores a_t: ``before`` is the state a_t was chosen in, ``after`` the state once it ran and the host
trained one epoch. Components (all reported every step, the value is their sum):

- ``contribution``: change in credited seed accuracy (attribution.py) x accuracy_scale. A potential
  difference, so a seed that is germinated and pruned again nets exactly 0 here, whatever was measured.
- ``rent``: -rent_coef x seed parameters / host parameters, every step a seed exists (rent.py).
- ``alpha_shock``: -alpha_shock_coef x sum of squared alpha changes (instant prunes cost more than gradual).
- ``shaping``: gamma * Phi(after) - Phi(before) on lifecycle stages (shaping.py); never pays for a cycle.
- ``fossilize``: on fossilization, a bonus only if the seed helped (contribution and total improvement above
  thresholds), otherwise a penalty.
- ``hindsight``: on a helpful fossilization, a bounded share of its credit for seeds that blended in and were
  pruned within the last ``hindsight_window`` steps (they may have scaffolded it); each is paid at most once.
- ``terminal``: at ``done``, terminal_coef x final validation accuracy.
"""

from __future__ import annotations

from esper_core.records import EnvObservation, RewardInputs
from esper_core.specs import RewardSpec

from esper_rewards.attribution import attributed_accuracy, credit
from esper_rewards.contribution_options import ContributionOptions
from esper_rewards.events import alpha_shock, slots_by_name, step_events
from esper_rewards.ledger import EpisodeLedger
from esper_rewards.rent import seed_param_share
from esper_rewards.shaping import shaping_term

COMPONENTS: tuple[str, ...] = (
    "contribution",
    "rent",
    "alpha_shock",
    "shaping",
    "fossilize",
    "hindsight",
    "terminal",
)


class ContributionReward:
    """One instance per env; keeps the episode's ledger (germination baselines, banks, scaffolds)."""

    def __init__(self, options: ContributionOptions | None = None) -> None:
        self.options = options if options is not None else ContributionOptions()
        self._potentials = self.options.stage_potentials()
        self._ledger = EpisodeLedger()
        self.episode_return = 0.0

    def reset(self) -> None:
        self._ledger.clear()
        self.episode_return = 0.0

    def __call__(self, inputs: RewardInputs) -> tuple[float, dict[str, float]]:
        opts, ledger = self.options, self._ledger
        before, after = inputs.before, inputs.after
        ledger.adopt(before)
        ledger.track_alpha(before)
        credited_before = attributed_accuracy(before, ledger)

        events = step_events(inputs)
        for slot in events.germinated:
            ledger.germinate(slot, before, after)
        ledger.track_alpha(after)
        for slot in events.pruned:
            ledger.prune(slot, after.epoch)
        ledger.expire_scaffolds(after.epoch, opts.hindsight_window)

        fossilize, hindsight = 0.0, 0.0
        for slot in events.fossilized:
            f, h = self._fossilization(slot, before, after)
            fossilize, hindsight = fossilize + f, hindsight + h
        credited_after = attributed_accuracy(after, ledger)
        ledger.forget_empty(after)

        components = {
            "contribution": opts.accuracy_scale * (credited_after - credited_before),
            "rent": -opts.rent_coef * seed_param_share(after, opts.fossilized_rent_factor),
            "alpha_shock": -opts.alpha_shock_coef * alpha_shock(inputs),
            "shaping": shaping_term(before, after, self._potentials, opts.shaping_gamma, inputs.done),
            "fossilize": fossilize,
            "hindsight": hindsight,
            "terminal": opts.terminal_coef * after.val_acc if inputs.done else 0.0,
        }
        value = sum(components.values())
        self.episode_return += value
        return value, components

    def _fossilization(self, slot: str, before: EnvObservation, after: EnvObservation) -> tuple[float, float]:
        """Bank the seed's credit, then pay (fossilize, hindsight) only if it actually helped."""
        opts, ledger = self.options, self._ledger
        was, now = slots_by_name(before).get(slot), slots_by_name(after).get(slot)
        measured = [s.last_contribution for s in (now, was) if s is not None and s.last_contribution is not None]
        contribution = measured[0] if measured else 0.0
        baseline = ledger.val_acc_at_germination(slot, default=before.val_acc)
        improvement = after.val_acc - baseline
        ledger.banked[slot] = credit(contribution, after.val_acc, baseline)
        ledger.seeds.pop(slot, None)

        helped = contribution > opts.fossilize_min_contribution and improvement > opts.fossilize_min_improvement
        if not helped:
            return -opts.fossilize_penalty, 0.0
        value = opts.accuracy_scale * max(0.0, min(contribution, improvement))
        scaffolds = ledger.take_scaffolds()
        hindsight = min(opts.hindsight_cap, opts.hindsight_share * value * len(scaffolds))
        return opts.fossilize_bonus_coef * value, hindsight


SPEC = RewardSpec(
    name="contribution",
    description="Counterfactual seed contribution minus rent and alpha shock, with lifecycle shaping, "
    "hindsight credit for scaffolds and a terminal accuracy bonus.",
    factory=ContributionReward,
    options_type=ContributionOptions,
)
