"""Invariants of the reward plugins (docs/design/growth-and-rewards.md, "Reward design"), as Hypothesis properties."""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from esper_core.ops import Op
from esper_core.records import DecodedAction, RewardInputs
from esper_core.stages import SeedStage
from esper_rewards.contribution import ContributionReward
from esper_rewards.contribution_options import ContributionOptions
from esper_rewards.loss_delta import LossDeltaReward
from esper_rewards.sparse import SparseReward
from support.reward_builders import (
    dormant_path,
    episode,
    fossilize_path,
    germinate_prune_path,
    observation,
    pad,
    slot,
    timeline,
)

accuracy = st.floats(0.0, 1.0, allow_nan=False)
contribution = st.floats(-0.1, 0.1, allow_nan=False)


@st.composite
def contribution_options(draw: st.DrawFn) -> ContributionOptions:
    """Any valid options: the guarantees must not depend on the defaults."""
    coef = st.floats(0.0, 2.0, allow_nan=False)
    return ContributionOptions(
        accuracy_scale=draw(st.floats(0.0, 50.0)),
        rent_coef=draw(coef),
        alpha_shock_coef=draw(coef),
        shaping_gamma=draw(st.floats(0.5, 1.0)),
        potential_germinated=draw(coef),
        potential_training=draw(coef),
        potential_blending=draw(coef),
        potential_holding=draw(coef),
        potential_fossilized=draw(coef),
        terminal_coef=draw(coef),
    )


@st.composite
def cycle_paths(draw: st.DrawFn) -> list:
    """A germinate -> ... -> prune -> embargo -> DORMANT path, pruned from TRAINING, BLENDING or HOLDING."""
    prune_from = draw(st.sampled_from(["training", "blending", "holding"]))
    tempo = draw(st.integers(1, 8))
    if prune_from == "training":
        blend, hold = None, 0
    elif prune_from == "blending":
        blend, hold = draw(st.integers(1, tempo)), 0
    else:
        blend, hold = tempo, draw(st.integers(1, 5))
    return germinate_prune_path(
        lead=draw(st.integers(1, 3)),
        training=draw(st.integers(1, 6)),
        blend=blend,
        tempo=tempo,
        target=draw(st.floats(0.05, 1.0)),
        hold=hold,
        fade=draw(st.integers(0, 8)),
        instant_shows_pruned=draw(st.booleans()),
        embargo=draw(st.integers(1, 4)),
        resetting=draw(st.integers(0, 2)),
        trail=draw(st.integers(0, 3)),
    )


@given(path=cycle_paths(), options=contribution_options(), data=st.data())
def test_a_germinate_then_prune_cycle_never_pays(path, options, data) -> None:
    """Whatever the seed's (meaningless) measurements and the host's accuracy drift, thrashing sums to <= 0."""
    n = len(path)
    contributions = data.draw(st.lists(contribution, min_size=n, max_size=n))
    accs = data.draw(st.lists(accuracy, min_size=n, max_size=n))
    steps = episode({"s0": timeline("s0", path, contributions)}, accs).run(ContributionReward(options))
    assert sum(value for value, _ in steps) <= 1e-9
    assert abs(sum(p["contribution"] for _, p in steps)) <= 1e-9  # the counterfactual term telescopes


@given(path=cycle_paths(), options=contribution_options(), other=st.sampled_from(["dormant", "fossil"]), data=st.data())
def test_a_cycle_never_beats_leaving_the_slot_alone(path, options, other, data) -> None:
    """Also with another slot's seed around and the terminal bonus at ``done``: same accuracies, no cycle."""
    n = len(path)
    contributions = data.draw(st.lists(contribution, min_size=n, max_size=n))
    accs = data.draw(st.lists(accuracy, min_size=n, max_size=n))
    other_path = dormant_path(n) if other == "dormant" else pad([(SeedStage.FOSSILIZED, 1.0)], n)
    other_line = timeline("s1", other_path, 0.03)
    cycle = episode({"s0": timeline("s0", path, contributions), "s1": other_line}, accs, done=True)
    idle = episode({"s0": timeline("s0", dormant_path(n)), "s1": other_line}, accs, done=True)
    cycle_return = sum(v for v, _ in cycle.run(ContributionReward(options)))
    idle_return = sum(v for v, _ in idle.run(ContributionReward(options)))
    assert cycle_return <= idle_return + 1e-9


@given(
    start=st.floats(0.05, 1.0),
    fade=st.integers(2, 10),
    coef=st.floats(0.01, 5.0),
)
def test_an_instant_prune_costs_more_alpha_shock_than_a_gradual_one(start, fade, coef) -> None:
    options = ContributionOptions(alpha_shock_coef=coef)

    def shock(steps_to_zero: int) -> float:
        path = germinate_prune_path(training=2, blend=1, tempo=1, target=start, hold=1, fade=steps_to_zero)
        prune_index = 1 + 2 + 1 + 1 - 1
        steps = episode({"s0": timeline("s0", path, 0.0)}, [0.5] * len(path)).run(ContributionReward(options))
        return -sum(p["alpha_shock"] for _, p in steps[prune_index:])

    instant, gradual = shock(0), shock(fade)
    assert math.isclose(instant, coef * start**2, rel_tol=1e-9)
    assert math.isclose(gradual, coef * start**2 / fade, rel_tol=1e-9)
    assert instant > gradual


@given(
    small=st.integers(1, 50_000),
    extra=st.integers(1, 50_000),
    host=st.integers(10_000, 10_000_000),
    reward_type=st.sampled_from([ContributionReward, LossDeltaReward]),
)
def test_rent_grows_with_seed_size(small, extra, host, reward_type) -> None:
    def rent(params: int) -> float:
        seed = slot("s0", SeedStage.TRAINING, seed_params=params)
        before = observation(3, [seed], host_params=host)
        after = observation(4, [seed], host_params=host)
        _, parts = reward_type()(RewardInputs(before=before, action=DecodedAction(op=Op.WAIT), after=after))
        return -parts["rent"]

    assert 0.0 < rent(small) < rent(small + extra)


@given(
    gap=st.integers(0, 6),
    helpful=st.floats(0.006, 0.2),
    rise=st.floats(0.001, 0.05),
    scaffold_blend=st.integers(1, 3),
)
def test_hindsight_credit_is_paid_to_a_recent_scaffold(gap, helpful, rise, scaffold_blend) -> None:
    scaffold = germinate_prune_path(lead=1, training=2, blend=scaffold_blend, tempo=3, fade=0, trail=1)
    late = dormant_path(len(scaffold) + gap) + fossilize_path(lead=0, hold=1, after=1)
    n = len(late)
    accs = [0.2 + rise * t for t in range(n)]
    options = ContributionOptions()
    assume(n - len(scaffold) <= options.hindsight_window)
    timelines = {"s0": timeline("s0", pad(scaffold, n), 0.0), "s1": timeline("s1", late, helpful)}
    steps = episode(timelines, accs).run(ContributionReward(options))
    paid = [p["hindsight"] for _, p in steps if p["hindsight"] != 0.0]
    assert len(paid) == 1
    assert 0.0 < paid[0] <= options.hindsight_cap


slot_summaries = st.builds(
    slot,
    name=st.sampled_from(["a", "b", "c"]),
    stage=st.sampled_from(list(SeedStage)),
    alpha=st.floats(0.0, 1.0),
    seed_params=st.integers(0, 100_000),
    last_contribution=st.none() | st.floats(-1.0, 1.0),
)


@st.composite
def observation_sequences(draw: st.DrawFn) -> list:
    """Arbitrary (even lifecycle-illegal) observations: rewards must stay finite and self-consistent."""
    length = draw(st.integers(2, 8))
    out = []
    for t in range(length):
        slots = draw(st.lists(slot_summaries, max_size=3, unique_by=lambda s: s.name))
        val_loss, host_params = draw(st.floats(0.0, 10.0)), draw(st.integers(1, 10**7))
        out.append(observation(t, slots, val_acc=draw(accuracy), val_loss=val_loss, host_params=host_params))
    return out


@given(
    observations=observation_sequences(),
    reward_type=st.sampled_from([ContributionReward, LossDeltaReward, SparseReward]),
    done=st.booleans(),
)
def test_components_sum_to_the_value_and_the_return_to_the_steps(observations, reward_type, done) -> None:
    reward = reward_type()
    reward.reset()
    values = []
    for t in range(len(observations) - 1):
        inputs = RewardInputs(
            before=observations[t],
            action=DecodedAction(op=Op.WAIT),
            after=observations[t + 1],
            done=done and t == len(observations) - 2,
        )
        value, parts = reward(inputs)
        assert all(math.isfinite(v) for v in parts.values())
        assert math.isclose(value, sum(parts.values()), abs_tol=1e-12)
        values.append(value)
    assert math.isclose(reward.episode_return, sum(values), abs_tol=1e-9)
