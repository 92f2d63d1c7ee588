"""Behaviour of the ``loss_delta`` and ``sparse`` rewards."""

from __future__ import annotations

import pytest

from esper_core.protocols import Reward
from esper_rewards.loss_delta import SPEC as LOSS_DELTA_SPEC
from esper_rewards.loss_delta import LossDeltaOptions, LossDeltaReward
from esper_rewards.sparse import SPEC as SPARSE_SPEC
from esper_rewards.sparse import SparseOptions, SparseReward
from support.reward_builders import HOST_PARAMS, dormant_path, episode, fossilize_path, germinate_prune_path, timeline


@pytest.mark.parametrize("spec", [LOSS_DELTA_SPEC, SPARSE_SPEC])
def test_specs_build_rewards(spec) -> None:
    assert isinstance(spec.factory(spec.options_type()), Reward)


def test_loss_delta_pays_the_drop_in_validation_loss() -> None:
    path = dormant_path(3)
    steps = episode({"s0": timeline("s0", path)}, [0.5] * 3, val_losses=[2.0, 1.5, 1.7]).run(LossDeltaReward())
    assert [p["loss_delta"] for _, p in steps] == [pytest.approx(0.5), pytest.approx(-0.2)]
    assert all(p["rent"] == 0.0 for _, p in steps)


def test_loss_delta_is_clipped_and_scaled() -> None:
    options = LossDeltaOptions(loss_scale=2.0, max_abs_delta=0.5)
    steps = episode({"s0": timeline("s0", dormant_path(3))}, [0.5] * 3, val_losses=[3.0, 2.9, 9.0]).run(
        LossDeltaReward(options)
    )
    assert [p["loss_delta"] for _, p in steps] == [pytest.approx(0.2), pytest.approx(-0.5)]


def test_loss_delta_charges_rent_that_grows_with_seed_size() -> None:
    path = germinate_prune_path(training=2, blend=None)
    rents = []
    for params in (2_000, 8_000):
        steps = episode({"s0": timeline("s0", path, seed_params=params)}, [0.5] * len(path)).run(LossDeltaReward())
        rents.append(-sum(p["rent"] for _, p in steps))
        for value, parts in steps:
            assert tuple(parts) == ("loss_delta", "rent")
            assert value == pytest.approx(sum(parts.values()), abs=1e-12)
    assert 0.0 < rents[0] < rents[1]


def test_sparse_is_zero_until_done_then_accuracy_minus_rent_of_added_params() -> None:
    path = fossilize_path(after=2)
    accs = [0.3 + 0.02 * t for t in range(len(path))]
    reward = SparseReward()
    steps = episode({"s0": timeline("s0", path, 0.02)}, accs, done=True).run(reward)
    assert all(value == 0.0 and tuple(p) == ("terminal", "rent") for value, p in steps[:-1])
    value, parts = steps[-1]
    assert parts["terminal"] == pytest.approx(accs[-1])
    assert parts["rent"] == pytest.approx(-0.1 * 5_000 / HOST_PARAMS)
    assert value == pytest.approx(parts["terminal"] + parts["rent"])
    assert reward.episode_return == pytest.approx(value)


def test_sparse_scales() -> None:
    path = dormant_path(2)
    reward = SparseReward(SparseOptions(terminal_coef=2.0))
    steps = episode({"s0": timeline("s0", path)}, [0.1, 0.8], done=True).run(reward)
    assert steps[-1][0] == pytest.approx(1.6)


@pytest.mark.parametrize("reward_type", [LossDeltaReward, SparseReward])
def test_reset_clears_the_episode_return(reward_type) -> None:
    reward = reward_type()
    episode({"s0": timeline("s0", dormant_path(3))}, [0.2, 0.4, 0.6], done=True).run(reward)
    assert reward.episode_return != 0.0
    reward.reset()
    assert reward.episode_return == 0.0


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        LossDeltaOptions(max_abs_delta=0.0)
    with pytest.raises(ValueError):
        SparseOptions(rent_coef=-0.1)
