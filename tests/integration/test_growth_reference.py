"""The no-growth reference the ``growth`` reward reads (``EnvObservation.val_acc_without_growth``): measured
only for a reward that asks, equal to validating with every grown seed's alpha zeroed by hand, and the
same whether envs train one by one or as a fused group."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from esper_core.config import load_config
from esper_core.config.loading import deep_merge
from esper_core.growth.counterfactual import growth_slots, growth_switched_off
from esper_core.plugins import registry_from_plugins
from esper_core.run.rundir import RunDir
from esper_core.run.runner import Runner
from esper_core.run.telemetry import read_jsonl
from support.run_configs import BUSY_HEURISTIC

TOLERANCE = 1e-4  # as tests/integration/test_fused_envs.py: the grouped convolution sums in another order


def _config(fused: str, reward: str = "growth", **changes: Any) -> Any:
    return load_config(
        overrides=deep_merge({
            "task": {"name": "synthetic", "options": {"train_size": 256, "val_size": 96, "test_size": 32}},
            "training": {"epoch_samples": 96, "batch_size": 32, "val_samples": 96, "eval_batch_size": 48},
            "run": {"episode_length": 8, "envs": 2, "rounds": 1, "seed": 3},
            "lifecycle": {"min_training_epochs": 1, "min_prune_age": 1, "embargo_epochs": 1, "resetting_epochs": 1},
            "actions": {"tempos": [1], "blueprints": ["conv_light", "norm"]},
            "host": {"name": "resnet_impaired"},
            "reward": {"name": reward},
            "policy": {"name": "heuristic", "options": BUSY_HEURISTIC},
            "device": {"device": "cpu", "threads": 1, "fused": fused},
        }, changes),
        cuda_available=False,
    )


class _Quiet:
    quiet = True

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _runner(tmp_path, name: str, config: Any) -> Runner:
    registry = registry_from_plugins(builtins=True)
    return Runner.build(config, registry, run_dir=RunDir.create(tmp_path, name), progress=_Quiet())


def test_the_reference_is_the_network_with_every_grown_seed_switched_off(tmp_path) -> None:
    runner = _runner(tmp_path, "plain", _config("off"))
    env = runner.envs[0]
    assert env.measures_growth
    obs = env.reset()
    assert obs.val_acc_without_growth == obs.val_acc  # nothing grown yet: the network is its own reference
    seen_grown = False
    policy = runner.policy
    state = policy.initial_state(1)
    for _ in range(env.episode_length):
        output = policy.act([env.observation], state)
        state = output.state
        action = runner.space.decode_batch(output.actions)[0]
        result = env.step(action)
        model = env._require_model()
        grown = growth_slots(model)
        if not grown:
            assert result.observation.val_acc_without_growth == result.observation.val_acc
            continue
        # After step_epoch alpha may have moved on; a fresh measurement at the current alphas must agree with
        # validating with the grown seeds zeroed by hand.
        seen_grown = True
        before = [model.slots[n].alpha.clone() for n in grown]
        with growth_switched_off(model) as switched:
            assert switched == grown and all(float(model.slots[n].alpha) == 0.0 for n in grown)
            by_hand = env._evaluate_now()[1]
        assert all(torch.equal(model.slots[n].alpha, a) for n, a in zip(grown, before))  # restored
        assert env._without_growth(0.0, None) == pytest.approx(by_hand)
    assert seen_grown, "the heuristic never blended a seed in; the test proves nothing"
    runner.close()


def test_a_reward_that_does_not_ask_gets_no_reference(tmp_path) -> None:
    runner = _runner(tmp_path, "contribution", _config("off", reward="contribution"))
    env = runner.envs[0]
    assert not env.measures_growth and env.reset().val_acc_without_growth is None
    runner.close()


@pytest.mark.slow
def test_a_fused_group_measures_the_same_reference_as_envs_one_by_one(tmp_path) -> None:
    def events(fused: str) -> list[dict[str, Any]]:
        runner = _runner(tmp_path, fused, _config(fused, actions={"tempos": [1], "blueprints": ["conv_small"]}))
        runner.start()
        runner.run(1)
        runner.close()
        assert bool(runner.groups) == (fused == "on")
        return [e for e in read_jsonl(tmp_path / fused / "events.jsonl") if e["type"] == "reward"]

    plain, fused = events("off"), events("on")
    assert len(plain) == len(fused) > 0
    growth = [(a["components"]["growth"], b["components"]["growth"]) for a, b in zip(plain, fused)]
    assert any(abs(a) > 0 for a, _ in growth), "no step paid for growth; the test proves nothing"
    assert max(abs(a - b) for a, b in growth) <= TOLERANCE
