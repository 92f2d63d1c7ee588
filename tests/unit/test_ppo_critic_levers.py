"""ppo_v2's critic levers (policy.options.value_norm, critic_lr, critic_max_grad_norm, critic_mean_fit): value
normalisation keeps exact statistics, preserves V(s) when they move, acts in return units and resumes exactly;
the mean fit moves V(s) by one constant to the returns' mean."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from esper_policies.ppo_v2.update import prepare_inputs
from esper_policies.ppo_v2.value_norm import MIN_STD, ValueNormaliser
from support.ppo_builders import assert_continues_identically, games, policy, rollout, round_trip
from support.slot_game import play_round

finite = st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False)
batches = st.lists(st.lists(finite, min_size=1, max_size=20), min_size=1, max_size=6)


@given(batches=batches)
def test_statistics_are_exact_over_everything_seen_whatever_the_batches(batches) -> None:
    norm = ValueNormaliser()
    for batch in batches:
        norm.update(torch.tensor(batch, dtype=torch.float64))
    seen = torch.tensor([x for batch in batches for x in batch], dtype=torch.float64)
    assert int(norm.count) == seen.numel()
    assert math.isclose(float(norm.mean), float(seen.mean()), abs_tol=1e-9)
    assert math.isclose(float(norm.std), max(MIN_STD, float(seen.std(unbiased=False))), rel_tol=1e-9, abs_tol=1e-9)


@given(batches=batches)
def test_normalised_targets_have_zero_mean_and_unit_variance(batches) -> None:
    norm = ValueNormaliser()
    for batch in batches:
        norm.update(torch.tensor(batch, dtype=torch.float64))
    seen = torch.tensor([x for batch in batches for x in batch], dtype=torch.float64)
    normalised = norm.normalise(seen)
    assert abs(float(normalised.mean())) < 1e-6
    if float(seen.std(unbiased=False)) > MIN_STD:
        assert math.isclose(float(normalised.var(unbiased=False)), 1.0, rel_tol=1e-6)
    torch.testing.assert_close(norm.denormalise(normalised), seen)  # the inverse


@given(first=st.lists(finite, min_size=1, max_size=20), second=st.lists(finite, min_size=1, max_size=20), seed=st.integers(0, 99))
@settings(max_examples=30)
def test_moving_the_statistics_leaves_every_denormalised_value_unchanged(first, second, seed) -> None:
    torch.manual_seed(seed)
    layer = nn.Linear(8, 1).double()
    x = torch.randn(32, 8, dtype=torch.float64)
    norm = ValueNormaliser()
    norm.update(torch.tensor(first, dtype=torch.float64))
    before = norm.denormalise(layer(x).detach())
    norm.update_preserving(torch.tensor(second, dtype=torch.float64), layer)
    torch.testing.assert_close(norm.denormalise(layer(x).detach()), before, rtol=1e-9, atol=1e-9)


def test_acting_reports_the_critic_head_denormalised() -> None:
    p = policy(value_norm=True)
    p.update(rollout(p))  # statistics away from (0, 1)
    assert float(p.value_norm.std) != 1.0 and float(p.value_norm.mean) != 0.0
    result = play_round(p, games(2, seed=5))
    features = result.rollout.obs[0]
    stored = p.layout.unpack(features)
    with torch.no_grad():
        out, _ = p.network.step(stored.normalised, stored.blueprint_index, p.initial_state(2))
    torch.testing.assert_close(result.rollout.values[0], p.value_norm.denormalise(out.value.float()))


def test_the_critic_trains_on_normalised_targets_and_reports_their_statistics() -> None:
    p = policy(value_norm=True)
    data = rollout(p)
    metrics = p.update(data)
    assert metrics["value_norm_mean"] == pytest.approx(float(p.value_norm.mean))
    assert metrics["value_norm_std"] == pytest.approx(float(p.value_norm.std))
    assert metrics["explained_variance"] is not None and metrics["explained_variance_after"] is not None


def test_a_checkpoint_round_trip_resumes_exactly() -> None:
    a = policy(seed=1, value_norm=True, critic_lr=1e-3, critic_max_grad_norm=0.5)
    a.update(rollout(a, seed=1))
    b = policy(seed=7, value_norm=True, critic_lr=1e-3, critic_max_grad_norm=0.5)
    b.load_state_dict(round_trip(a.state_dict()))
    for key in ("count", "mean", "m2"):
        assert torch.equal(getattr(a.value_norm, key), getattr(b.value_norm, key))
    assert_continues_identically(a, b)


def test_a_state_saved_with_other_value_norm_setting_is_refused_with_the_option_named() -> None:
    plain, normed = policy(), policy(value_norm=True)
    with pytest.raises(KeyError, match="value_norm"):
        normed.load_state_dict(round_trip(plain.state_dict()))
    with pytest.raises(KeyError, match="value_norm"):
        plain.load_state_dict(round_trip(normed.state_dict()))


def test_the_critic_gets_its_own_learning_rate_and_clip() -> None:
    p = policy(critic_lr=1e-5, critic_max_grad_norm=1e-6)
    groups = p.optimizer.param_groups
    assert groups[1]["lr"] == 1e-5 and groups[0]["lr"] == p.options.lr
    critic = {id(q) for q in p.network.critic.parameters()}
    assert set(map(id, groups[1]["params"])) == critic
    assert not critic & {id(q) for q in p._updater.main_params}  # out of the global clip
    metrics = p.update(rollout(p))
    assert metrics["critic_grad_clipped"] == 1.0  # a 1e-6 clip always fires
    # Default: the critic is in the global clip and shares the learning rate.
    d = policy()
    assert d.optimizer.param_groups[1]["lr"] == d.options.lr
    assert critic_ids(d) <= {id(q) for q in d._updater.main_params}


def critic_ids(p) -> set[int]:
    return {id(q) for q in p.network.critic.parameters()}


@given(offset=st.floats(-20.0, 20.0, allow_nan=False), value_norm=st.booleans(), seed=st.integers(0, 3))
@settings(max_examples=20)
def test_the_mean_fit_moves_every_value_by_one_constant_to_the_returns_mean(offset, value_norm, seed) -> None:
    """fit_critic_mean moves V(s) by one constant, the rollout's mean of (return - value), in return units
    whatever value_norm is: afterwards the critic's mean over the rollout is the returns' mean."""
    p = policy(seed=seed, value_norm=value_norm)
    data = rollout(p, seed=seed)
    data.rewards += offset  # a return mean far from the untrained critic's output
    inputs = prepare_inputs(data, p.layout, p.options.gamma, p.options.gae_lambda, p.device)
    if value_norm:
        p.value_norm.update_preserving(inputs.returns, p.network.critic[-1])  # as update() does first
    before = p._updater.evaluate_all(inputs).values
    torch.testing.assert_close(before, inputs.old_values, rtol=1e-4, atol=1e-4)  # the stored values are the critic's
    shift = p._updater.fit_critic_mean(inputs)
    after = p._updater.evaluate_all(inputs).values
    tolerance = 1e-4 * (1.0 + abs(offset))
    assert math.isclose(float(after.mean()), float(inputs.returns.mean()), abs_tol=tolerance)
    torch.testing.assert_close(after - before, torch.full_like(before, float(shift)), rtol=0.0, atol=tolerance)


def test_the_mean_fit_is_reported_and_can_be_switched_off() -> None:
    on, off = policy(seed=2), policy(seed=2, critic_mean_fit=False)
    data_on, data_off = rollout(on, seed=2), rollout(off, seed=2)
    data_on.rewards += 3.0
    data_off.rewards += 3.0
    expected = float((prepare_inputs(data_on, on.layout, 0.995, 0.97, on.device).raw_advantages).mean())
    assert on.update(data_on)["critic_mean_shift"] == pytest.approx(expected, rel=1e-5)
    assert off.update(data_off)["critic_mean_shift"] == 0.0
