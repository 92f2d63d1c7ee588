"""Resume is exact: 2 rounds straight equal 1 round + `esper resume --rounds 1` (ppo_v2, fixed seed, CPU),
line by line in events.jsonl and metrics.jsonl (wall-clock fields aside). A checkpoint made for another
action space or plugin set is refused with a diff."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from esper_core.run.checkpoint import CheckpointMismatchError, latest_checkpoint, load_checkpoint
from esper_core.cli import main
from esper_core.cli.run import config_from_checkpoint
from esper_core.hookspecs import hookimpl
from esper_core.plugins import registry_from_plugins
from esper_core.run.runner import Runner
from esper_core.specs import BlueprintSpec
from esper_core.run.telemetry import read_jsonl
from support.run_configs import SMALL_PPO, reproducible, write_config
from support.run_fakes import ConvSeed

PPO_RUN = {"host": {"name": "tiny_cnn"}, "policy": {"name": "ppo_v2", "options": SMALL_PPO}, "run": {"episode_length": 4, "seed": 3}}


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    config = str(write_config(root, PPO_RUN))
    _run(["run", "--config", config, "--run-dir", str(root), "--name", "straight", "--rounds", "2"])
    return root / "straight", config


def _assert_same_lines(expected_run, actual_run) -> None:
    for name in ("events.jsonl", "metrics.jsonl"):
        expected = reproducible(read_jsonl(expected_run / name))
        actual = reproducible(read_jsonl(actual_run / name))
        assert len(expected) == len(actual), name
        for line, (a, b) in enumerate(zip(expected, actual)):
            assert a == b, f"{name} line {line} differs"


def test_two_rounds_equal_one_round_plus_resume(straight, tmp_path):
    straight_run, config = straight
    _run(["run", "--config", config, "--run-dir", str(tmp_path), "--name", "split", "--rounds", "1"])
    output = _run(["resume", str(tmp_path / "split"), "--rounds", "1"])
    assert "resuming" in output and "round 1 is next" in output
    _assert_same_lines(straight_run, tmp_path / "split")
    assert any(m["policy"] for m in read_jsonl(tmp_path / "split" / "metrics.jsonl"))  # ppo_v2 really updated


def test_resuming_an_older_checkpoint_cuts_the_files_back_and_replays_exactly(straight, tmp_path):
    straight_run, config = straight
    _run(["run", "--config", config, "--run-dir", str(tmp_path), "--name", "again", "--rounds", "2"])
    again = tmp_path / "again"
    (again / "checkpoints" / "round_00002.pt").unlink()  # as if the run had died during round 2
    _run(["resume", str(again), "--rounds", "1"])
    _assert_same_lines(straight_run, again)


def test_resume_without_rounds_finishes_the_planned_run(tmp_path):
    config = str(write_config(tmp_path, {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 2}}))
    _run(["run", "--config", config, "--run-dir", str(tmp_path), "--name", "r", "--rounds", "1"])
    output = _run(["resume", str(tmp_path / "r")])
    assert "pass --rounds N" in output
    _run(["resume", str(tmp_path / "r"), "--rounds", "1"])
    assert load_checkpoint(latest_checkpoint(tmp_path / "r" / "checkpoints"))["round"] == 2


class ExtraBlueprint:
    """A third-party blueprint plugin that appears after the run started."""

    @hookimpl
    def esper_blueprints(self) -> list[BlueprintSpec]:
        return [BlueprintSpec(name="extra_conv", description="a late arrival", factory=ConvSeed)]


def test_a_new_blueprint_plugin_changes_the_layout_and_resume_refuses_with_a_diff(tmp_path):
    config = str(write_config(tmp_path, {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 2}}))
    _run(["run", "--config", config, "--run-dir", str(tmp_path), "--name", "r", "--rounds", "1"])
    path = latest_checkpoint(tmp_path / "r" / "checkpoints")
    payload = load_checkpoint(path)
    registry = registry_from_plugins(ExtraBlueprint(), builtins=True)
    runner = Runner.build(config_from_checkpoint(payload), registry)
    with pytest.raises(CheckpointMismatchError) as info:
        runner.restore(payload, str(path))
    message = str(info.value)
    assert "'blueprint' differs" in message and "this run only: ['extra_conv']" in message
    assert "plugin blueprint:extra_conv" in message and "is used now but not by the checkpoint" in message


def test_policy_warnings_from_updates_are_written_as_events(straight):
    straight_run, _ = straight
    metrics = read_jsonl(straight_run / "metrics.jsonl")
    expected = [(m["round"], w) for m in metrics for w in m["policy"].get("warnings", [])]
    events = [(e["round"], e["message"]) for e in read_jsonl(straight_run / "events.jsonl") if e["type"] == "policy_warning"]
    assert expected, "a 2-env, 4-step run should trip at least one diagnostic (e.g. near-zero KL)"
    assert events == expected


def test_a_checkpoint_from_before_the_ppo_section_moved_is_refused_with_the_new_key(straight, tmp_path):
    """A 0.1 checkpoint stores a ``ppo`` config section; resuming it names where each key went, no traceback."""
    straight_run, _ = straight
    old = tmp_path / "old"
    old.mkdir()
    for item in ("config.json", "events.jsonl", "metrics.jsonl"):
        (old / item).write_bytes((straight_run / item).read_bytes())
    (old / "checkpoints").mkdir()
    payload = load_checkpoint(latest_checkpoint(straight_run / "checkpoints"))
    payload["config"]["ppo"] = {"clip_ratio": 0.2, "lstm_dim": 32}
    torch.save(payload, old / "checkpoints" / "round_00002.pt")
    for command in (["resume", str(old)], ["eval", str(old)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "ppo.clip_ratio: moved to policy.options.clip_ratio" in result.output
        assert "ppo.lstm_dim: moved to policy.options.lstm_dim" in result.output
