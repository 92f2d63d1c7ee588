"""The ``growth`` reward credits only what growth adds over the same network without it
(docs/design/growth-and-rewards.md, "The growth reward"), as Hypothesis properties on hand-built episodes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper_core.ops import Op
from esper_core.records import DecodedAction, RewardInputs
from esper_core.stages import SeedStage
from esper_rewards.growth import GrowthOptions, GrowthReward
from support.reward_builders import (
    HOST_PARAMS,
    SEED_PARAMS,
    dormant_path,
    fossilize_path,
    germinate_prune_path,
    observation,
    pad,
    timeline,
)

host_acc = st.floats(0.05, 0.9, allow_nan=False)
options = st.builds(GrowthOptions, gain_scale=st.floats(0.0, 50.0), param_cost=st.floats(0.0, 2.0))


def run(path: list, host: list[float], gain: list[float], opts: GrowthOptions, done: bool = True) -> list[tuple[float, dict]]:
    """One slot following ``path``; at step t the network scores host[t] + gain[t] and host[t] without its seeds."""
    slots = timeline("s0", path, 0.0)
    obs = [
        observation(t, [slots[t]], val_acc=host[t] + gain[t], val_acc_without_growth=host[t])
        for t in range(len(path))
    ]
    reward = GrowthReward(opts)
    reward.reset()
    return [
        reward(RewardInputs(before=obs[t], action=DecodedAction(op=Op.WAIT), after=obs[t + 1], done=done and t == len(path) - 2))
        for t in range(len(path) - 1)
    ]


def total(steps: list[tuple[float, dict]]) -> float:
    return sum(value for value, _ in steps)


@st.composite
def grown_episode(draw: st.DrawFn) -> tuple[list, list[float], list[float]]:
    """A seed fossilized at some point, host accuracies drifting anyhow, gains anything while it is blended
    (0 before: nothing is grown, so the env reports the network itself as its reference)."""
    path = pad(fossilize_path(lead=draw(st.integers(1, 3)), training=draw(st.integers(1, 4)), tempo=draw(st.integers(1, 4))),
               draw(st.integers(8, 20)))
    n = len(path)
    host = draw(st.lists(host_acc, min_size=n, max_size=n))
    gains = [draw(st.floats(-0.05, 0.1)) if alpha > 0 else 0.0 for _, alpha in path]
    return path, host, gains


@given(length=st.integers(2, 30), data=st.data(), opts=options)
def test_an_episode_that_never_grows_scores_exactly_zero(length, data, opts) -> None:
    host = data.draw(st.lists(host_acc, min_size=length, max_size=length))
    steps = run(dormant_path(length), host, [0.0] * length, opts)
    assert all(value == 0.0 and parts == {"growth": 0.0, "cost": 0.0} for value, parts in steps)


@given(episode=grown_episode(), data=st.data(), opts=options)
def test_host_only_improvement_changes_no_reward(episode, data, opts) -> None:
    """Any other host trajectory (the host learning faster or slower on its own) under the same gains pays
    the same, step by step."""
    path, host, gains = episode
    other = data.draw(st.lists(host_acc, min_size=len(path), max_size=len(path)))
    for (a, pa), (b, pb) in zip(run(path, host, gains, opts), run(path, other, gains, opts)):
        assert math.isclose(a, b, abs_tol=1e-9)
        assert pa.keys() == pb.keys()


@given(episode=grown_episode(), noise=st.floats(0.0, 0.02), opts=options, data=st.data())
def test_a_seed_that_adds_nothing_earns_no_more_than_the_noise(episode, noise, opts, data) -> None:
    path, host, _ = episode
    gains = [data.draw(st.floats(-noise, noise)) if alpha > 0 else 0.0 for _, alpha in path]
    steps = run(path, host, gains, opts)
    assert sum(p["growth"] for _, p in steps) <= opts.gain_scale * noise + 1e-9
    assert total(steps) <= opts.gain_scale * noise + 1e-9


@given(episode=grown_episode(), added=st.floats(0.001, 0.2), opts=options)
def test_the_return_is_the_final_gain_minus_the_final_size(episode, added, opts) -> None:
    """Whatever happened on the way, the episode pays for where it ends: gain_scale x G_final - param_cost x share."""
    path, host, gains = episode
    gains[-1] = added
    steps = run(path, host, gains, opts)
    expected = opts.gain_scale * added - opts.param_cost * SEED_PARAMS / HOST_PARAMS
    assert math.isclose(total(steps), expected, abs_tol=1e-9)
    assert sum(p["cost"] for _, p in steps[:-1]) == 0.0  # the size is charged once, at the end


@given(episode=grown_episode(), added=st.floats(0.01, 0.2), scale=st.floats(1.0, 50.0))
def test_a_seed_that_adds_accuracy_outscores_never_growing(episode, added, scale) -> None:
    path, host, gains = episode
    gains[-1] = added
    opts = GrowthOptions(gain_scale=scale, param_cost=0.1 * scale * added * HOST_PARAMS / SEED_PARAMS)
    grown = total(run(path, host, gains, opts))
    never = total(run(dormant_path(len(path)), host, [0.0] * len(path), opts))
    assert never == 0.0 < grown


@given(data=st.data(), opts=options)
def test_a_germinate_then_prune_cycle_nets_at_most_zero(data, opts) -> None:
    """Whatever a pruned seed seemed to add while it was blended, the payments telescope back to 0."""
    path = germinate_prune_path(
        training=data.draw(st.integers(1, 4)), blend=data.draw(st.integers(1, 3)), tempo=3,
        hold=data.draw(st.integers(0, 3)), fade=data.draw(st.integers(0, 4)),
    )
    n = len(path)
    host = data.draw(st.lists(host_acc, min_size=n, max_size=n))
    gains = [data.draw(st.floats(-0.1, 0.1)) if alpha > 0 and stage is not SeedStage.EMBARGOED else 0.0 for stage, alpha in path]
    steps = run(path, host, gains, opts)
    assert abs(total(steps)) <= 1e-9


def test_an_observation_without_the_reference_is_a_clear_error() -> None:
    obs = observation(0, [])
    with pytest.raises(ValueError, match="val_acc_without_growth.*measures_growth"):
        GrowthReward()(RewardInputs(before=obs, action=DecodedAction(op=Op.WAIT), after=obs))
