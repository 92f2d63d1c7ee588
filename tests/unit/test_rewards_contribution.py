"""Behaviour of the default ``contribution`` reward, on hand-built episodes."""

from __future__ import annotations

import attrs
import pytest

from esper_core.ops import Op
from esper_core.protocols import Reward
from esper_core.records import DecodedAction, RewardInputs
from esper_core.stages import SeedStage
from esper_rewards.contribution import COMPONENTS, SPEC, ContributionReward
from esper_rewards.contribution_options import ContributionOptions
from support.reward_builders import (
    HOST_PARAMS,
    dormant_path,
    episode,
    fossilize_path,
    germinate_prune_path,
    observation,
    pad,
    slot,
    timeline,
)


def _total(steps: list[tuple[float, dict[str, float]]], component: str | None = None) -> float:
    if component is None:
        return sum(value for value, _ in steps)
    return sum(parts[component] for _, parts in steps)


def test_spec_and_protocol() -> None:
    reward = SPEC.factory(SPEC.options_type())
    assert SPEC.name == "contribution"
    assert isinstance(reward, Reward)


def test_every_component_is_named_every_step_and_sums_to_the_value() -> None:
    path = fossilize_path(lead=1, training=2, tempo=3, hold=2, after=2)
    accs = [0.30 + 0.02 * t for t in range(len(path))]
    steps = episode({"s0": timeline("s0", path, 0.03)}, accs, done=True).run(ContributionReward())
    for value, parts in steps:
        assert tuple(parts) == COMPONENTS
        assert value == pytest.approx(sum(parts.values()), abs=1e-12)


def test_germinate_then_prune_of_a_useless_seed_costs_reward() -> None:
    path = germinate_prune_path(training=3, blend=3, hold=2, fade=0)
    # The seed looks mildly helpful counterfactually while val accuracy drifts: no real effect overall.
    accs = [0.5 + 0.01 * (t % 3) for t in range(len(path))]
    steps = episode({"s0": timeline("s0", path, 0.01)}, accs).run(ContributionReward())
    assert _total(steps) < 0.0
    assert _total(steps, "contribution") == pytest.approx(0.0, abs=1e-12)  # telescopes
    assert _total(steps, "shaping") <= 0.0
    assert _total(steps, "rent") < 0.0


def test_reward_is_the_consequence_of_the_action() -> None:
    """Germinating is charged at the germination step: ``after`` already holds the seed."""
    path = germinate_prune_path(lead=1, training=2, blend=None)
    steps = episode({"s0": timeline("s0", path)}, [0.5] * len(path)).run(ContributionReward())
    _, first = steps[0]
    assert first["rent"] == pytest.approx(-0.2 * 5_000 / HOST_PARAMS)
    assert first["shaping"] == pytest.approx(0.995 * 0.02)


def test_instant_prune_costs_more_alpha_shock_than_a_gradual_one() -> None:
    def shock(fade: int) -> float:
        path = germinate_prune_path(training=2, blend=3, hold=1, fade=fade)
        steps = episode({"s0": timeline("s0", path, 0.0)}, [0.5] * len(path)).run(ContributionReward())
        prune_from = 1 + 2 + 3 + 1 - 1  # index of the last HOLDING observation (the prune step's `before`)
        return -sum(parts["alpha_shock"] for _, parts in steps[prune_from:])

    instant, fast, slow = shock(0), shock(2), shock(8)
    assert instant == pytest.approx(0.1 * 1.0)
    assert instant > fast > slow > 0.0
    assert fast == pytest.approx(0.1 / 2)


def test_rent_grows_with_seed_size() -> None:
    path = germinate_prune_path(training=3, blend=None)
    rents = []
    for params in (1_000, 5_000, 20_000):
        steps = episode({"s0": timeline("s0", path, seed_params=params)}, [0.5] * len(path)).run(ContributionReward())
        rents.append(-_total(steps, "rent"))
    assert 0.0 < rents[0] < rents[1] < rents[2]


def test_rent_continues_after_fossilization() -> None:
    """Fossilizing an unhelpful seed must not be a way to stop paying for it."""
    path = fossilize_path(after=3)
    steps = episode({"s0": timeline("s0", path, 0.0)}, [0.5] * len(path)).run(ContributionReward())
    assert steps[-1][1]["rent"] == pytest.approx(-0.2 * 5_000 / HOST_PARAMS)


def _fossilize_step(steps: list[tuple[float, dict[str, float]]], path: list) -> dict[str, float]:
    index = next(t for t in range(len(path) - 1) if path[t + 1][0] is SeedStage.FOSSILIZED)
    return steps[index][1]


def test_fossilizing_a_helpful_seed_is_rewarded() -> None:
    path = fossilize_path(hold=2, after=2)
    accs = [0.40 + 0.01 * t for t in range(len(path))]  # the run improves while the seed is there
    steps = episode({"s0": timeline("s0", path, 0.03)}, accs).run(ContributionReward())
    parts = _fossilize_step(steps, path)
    assert parts["fossilize"] == pytest.approx(10.0 * 0.03)
    assert parts["hindsight"] == 0.0  # no scaffold


def test_fossilizing_a_seed_below_the_contribution_threshold_is_penalised() -> None:
    path = fossilize_path(hold=2, after=2)
    accs = [0.40 + 0.01 * t for t in range(len(path))]
    steps = episode({"s0": timeline("s0", path, 0.002)}, accs).run(ContributionReward())
    assert _fossilize_step(steps, path)["fossilize"] == pytest.approx(-0.1)


def test_counterfactually_valuable_seed_without_total_improvement_is_not_rewarded() -> None:
    """The host learned to depend on the seed (big counterfactual drop) but accuracy never rose."""
    path = fossilize_path(hold=2, after=2)
    accs = [0.50] * len(path)
    steps = episode({"s0": timeline("s0", path, 0.20)}, accs).run(ContributionReward())
    assert _fossilize_step(steps, path)["fossilize"] == pytest.approx(-0.1)
    assert _total(steps, "contribution") == pytest.approx(0.0, abs=1e-12)  # credit capped by improvement


def _scaffold_then_fossilize(gap_dormant: int, scaffold_blends: bool = True) -> tuple[list, dict]:
    """s0 blends in and is pruned; later s1 grows and fossilizes with a helpful contribution."""
    scaffold = germinate_prune_path(lead=1, training=2, blend=2 if scaffold_blends else None, fade=0, trail=1)
    late = [(SeedStage.DORMANT, 0.0)] * (len(scaffold) + gap_dormant) + fossilize_path(lead=0, hold=1, after=2)[0:]
    length = len(late)
    timelines = {
        "s0": timeline("s0", pad(scaffold, length), 0.0),
        "s1": timeline("s1", late, 0.04),
    }
    accs = [0.30 + 0.01 * t for t in range(length)]
    return late, {"timelines": timelines, "accs": accs}


def test_hindsight_credit_is_paid_to_a_scaffold_at_the_fossilization_step() -> None:
    late, built = _scaffold_then_fossilize(gap_dormant=0)
    steps = episode(built["timelines"], built["accs"]).run(ContributionReward())
    parts = _fossilize_step(steps, late)
    assert parts["fossilize"] > 0.0
    assert parts["hindsight"] == pytest.approx(min(0.1, 0.25 * 10.0 * 0.04))
    assert sum(1 for _, p in steps if p["hindsight"] != 0.0) == 1  # paid once, at that step only


def test_hindsight_is_bounded_by_the_cap() -> None:
    late, built = _scaffold_then_fossilize(gap_dormant=0)
    options = ContributionOptions(hindsight_share=1.0, hindsight_cap=0.05)
    steps = episode(built["timelines"], built["accs"]).run(ContributionReward(options))
    assert _fossilize_step(steps, late)["hindsight"] == pytest.approx(0.05)


def test_no_hindsight_outside_the_window_or_for_a_seed_that_never_blended() -> None:
    late, built = _scaffold_then_fossilize(gap_dormant=0)
    narrow = ContributionOptions(hindsight_window=3)
    steps = episode(built["timelines"], built["accs"]).run(ContributionReward(narrow))
    assert _total(steps, "hindsight") == 0.0

    late, built = _scaffold_then_fossilize(gap_dormant=0, scaffold_blends=False)
    steps = episode(built["timelines"], built["accs"]).run(ContributionReward())
    assert _total(steps, "hindsight") == 0.0


def test_terminal_bonus_only_at_done() -> None:
    path = dormant_path(4)
    accs = [0.2, 0.3, 0.4, 0.55]
    steps = episode({"s0": timeline("s0", path)}, accs, done=True).run(ContributionReward())
    assert [p["terminal"] for _, p in steps] == [0.0, 0.0, pytest.approx(0.55)]
    assert _total(steps) == pytest.approx(0.55)


def test_shaping_potential_is_zero_once_the_episode_is_done() -> None:
    """Phi(terminal) = 0: shaping only moves reward in time, it adds none over an episode."""
    path = fossilize_path(after=2)
    steps = episode({"s0": timeline("s0", path, 0.0)}, [0.5] * len(path), done=True).run(ContributionReward())
    assert _total(steps, "shaping") <= 0.0
    assert steps[-1][1]["shaping"] == pytest.approx(-0.06)


def test_episode_return_is_the_sum_of_step_rewards_and_reset_clears_it() -> None:
    late, built = _scaffold_then_fossilize(gap_dormant=1)
    reward = ContributionReward()
    steps = episode(built["timelines"], built["accs"], done=True).run(reward)
    assert reward.episode_return == pytest.approx(_total(steps), abs=1e-12)
    reward.reset()
    assert reward.episode_return == 0.0


def test_reset_clears_episode_state() -> None:
    """A scaffold from the previous episode must not be credited in the next one."""
    scaffold_only = germinate_prune_path(lead=1, training=2, blend=2, fade=0, trail=1)
    reward = ContributionReward()
    episode({"s0": timeline("s0", scaffold_only, 0.0)}, [0.3] * len(scaffold_only)).run(reward)

    path = fossilize_path(lead=0, hold=1, after=1)
    accs = [0.30 + 0.01 * t for t in range(len(path))]
    inputs = episode({"s1": timeline("s1", path, 0.04)}, accs).inputs
    with_memory = ContributionReward()
    for i in episode({"s0": timeline("s0", scaffold_only, 0.0)}, [0.3] * len(scaffold_only)).inputs:
        with_memory(i)
    # Same epochs: the previous episode's prune is inside the window unless reset clears it.
    kept = sum(with_memory(i)[1]["hindsight"] for i in inputs)
    assert kept > 0.0
    cleared = episode({"s1": timeline("s1", path, 0.04)}, accs).run(reward)  # Episode.run calls reset()
    assert _total(cleared, "hindsight") == 0.0


def test_a_reward_created_mid_episode_does_not_credit_seeds_it_never_saw_arrive() -> None:
    held = slot("s0", SeedStage.HOLDING, alpha=1.0, seed_params=5_000, last_contribution=0.05)
    fossil = slot("s1", SeedStage.FOSSILIZED, alpha=1.0, seed_params=5_000, last_contribution=0.05)
    before = observation(10, [held, fossil], val_acc=0.6)
    after = observation(11, [held, fossil], val_acc=0.6)
    value, parts = ContributionReward()(RewardInputs(before=before, action=DecodedAction(op=Op.WAIT), after=after))
    assert parts["contribution"] == 0.0
    assert parts["fossilize"] == 0.0 and parts["hindsight"] == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        {"potential_training": -0.1},
        {"shaping_gamma": 1.5},
        {"hindsight_share": 2.0},
        {"hindsight_window": 0},
        {"rent_coef": -1.0},
    ],
)
def test_options_reject_values_that_would_break_the_guarantees(bad: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        ContributionOptions(**bad)


def test_options_are_frozen_and_documented_defaults_hold() -> None:
    options = ContributionOptions()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        options.rent_coef = 1.0  # type: ignore[misc]
    assert options.stage_potentials()[SeedStage.FOSSILIZED] == options.potential_holding
