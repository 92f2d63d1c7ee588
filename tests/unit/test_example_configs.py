"""The config files shipped in examples/configs/ load, pass every check `esper run` makes, and hold the
settings their write-ups quote."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from esper_core.cli import main
from esper_core.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"


def test_grow_beyond_static_holds_the_settings_of_the_study_it_reproduces() -> None:
    config = load_config(CONFIGS / "grow-beyond-static.toml", cuda_available=True)
    assert (config.run.preset, config.run.envs, config.run.episode_length, config.run.rounds) == ("gpu", 32, 15, 64)
    assert (config.task.name, config.host.name, config.reward.name, config.policy.name) == (
        "synthetic", "resnet_impaired", "growth", "ppo_v2")
    assert (config.training.epoch_samples, config.training.val_samples) == (1024, 512)
    assert config.task.options["data_seed"] == 0 and config.reward.options["param_cost"] == 0.5
    policy = config.policy.options
    assert policy["critic_trunk"] == "own" and policy["prob_floors"] == {"blueprint": 0.05}
    assert (policy["critic_lr"], policy["critic_max_grad_norm"], policy["update_epochs"], policy["minibatches"]) == (
        0.003, 1.0, 4, 8)


def test_every_example_config_passes_the_checks_of_esper_run(tmp_path: Path) -> None:
    files = sorted(CONFIGS.glob("*.toml"))
    assert files
    for path in files:
        shown = CliRunner().invoke(main, ["config", "show", "--config", str(path), "--preset", "cpu-quick",
                                          "--device", "cpu", "--data-dir", str(tmp_path)])
        assert shown.exit_code == 0, (path.name, shown.output)
        assert shown.stdout.strip(), path.name
