"""Values that cannot be right are refused up front, naming the key, what was asked and the bound
(issue 13: ``device.threads=100000`` segfaulted torch, a huge ``lstm_dim`` / ``episode_length`` tried to
allocate far more memory than a machine has, a 1e9 learning rate ran to NaN)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from support.run_configs import write_config

from esper_core.cli import main

BASE = {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 2, "rounds": 1}}


@pytest.mark.parametrize(
    "assignment, key, bound",
    [
        ("device.threads=100000", "device.threads", "[1, 1024]"),
        ("run.episode_length=100000000", "run.episode_length", "[1, 10000]"),
        ("run.envs=1000000", "run.envs", "[1, 1024]"),
        ("run.rounds=10000000000", "run.rounds", "[1, 1000000]"),
        ("training.lr=1e9", "training.lr", "[0.0, 10.0]"),
        ("training.seed_lr=1e9", "training.seed_lr", "[0.0, 10.0]"),
        ("training.batch_size=100000000", "training.batch_size", "[1, 65536]"),
        ("training.epoch_samples=1000000000000", "training.epoch_samples", "[1, 100000000]"),
        ("training.weight_decay=3", "training.weight_decay", "[0.0, 1.0]"),
        ("lifecycle.param_budget=1e12", "lifecycle.param_budget", "(0.0, 1000.0]"),
        ("lifecycle.max_seeds=100000", "lifecycle.max_seeds", "[1, 1024]"),
        ("run.name=" + "x" * 300, "run.name", "at most 200 bytes"),
    ],
)
def test_core_settings_out_of_bounds_are_refused_with_key_and_bound(tmp_path, assignment, key, bound):
    config = write_config(tmp_path, BASE)
    result = CliRunner().invoke(main, ["run", "--config", str(config), "--run-dir", str(tmp_path), "--set", assignment])
    assert result.exit_code == 2, result.output
    assert key in result.output and bound in result.output and "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["esper.json"]  # nothing was created


@pytest.mark.parametrize(
    "assignment, key, bound",
    [
        ("policy.options.lstm_dim=1000000", "policy.options.lstm_dim", "[1, 4096]"),
        ("policy.options.feature_dim=1000000", "policy.options.feature_dim", "[1, 4096]"),
        ("policy.options.clip_ratio=1.5", "policy.options.clip_ratio", "(0.0, 1.0)"),
        ("policy.options.lr=50", "policy.options.lr", "(0.0, 1.0]"),
    ],
)
def test_ppo_sizes_and_rates_out_of_bounds_are_refused_with_key_and_bound(tmp_path, assignment, key, bound):
    config = write_config(tmp_path, BASE, {"policy": {"name": "ppo_v2", "options": {"feature_dim": 16, "lstm_dim": 16}}})
    result = CliRunner().invoke(main, ["run", "--config", str(config), "--run-dir", str(tmp_path), "--set", assignment])
    assert result.exit_code == 2, result.output
    assert key in result.output and bound in result.output and "Traceback" not in result.output


def test_a_synthetic_split_too_large_for_memory_is_refused(tmp_path):
    config = write_config(tmp_path, BASE)
    result = CliRunner().invoke(
        main, ["run", "--config", str(config), "--run-dir", str(tmp_path), "--set", "task.options.train_size=1000000000"]
    )
    assert result.exit_code == 2, result.output
    assert "train_size" in result.output and "1000000" in result.output
