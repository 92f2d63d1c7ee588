"""What a researcher reads about a run agrees with itself: rounds numbered from 0 on the console, in
events.jsonl, metrics.jsonl, the report and the checkpoint names (round_0000N.pt is where round N starts);
a run's own config.json runs it again line for line; summary.json stays true across resumes;
run.keep_checkpoints is obeyed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from esper_core.cli import main
from esper_core.run.checkpoint import list_checkpoints, load_checkpoint
from esper_core.run.telemetry import read_jsonl
from support.run_configs import SMALL_PPO, reproducible, write_config

PPO_RUN = {"host": {"name": "tiny_cnn"}, "policy": {"name": "ppo_v2", "options": SMALL_PPO},
           "run": {"episode_length": 3, "seed": 5}}
RANDOM_RUN = {"host": {"name": "tiny_cnn"}, "policy": {"name": "random"}, "run": {"episode_length": 2, "envs": 1}}


def _cli(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("runs")
    config = write_config(root, PPO_RUN)
    output = _cli(["run", "--config", str(config), "--run-dir", str(root), "--name", "first", "--rounds", "3"])
    return root / "first", output


def test_rounds_count_from_zero_everywhere(ppo_run) -> None:
    run, output = ppo_run
    console = [int(m.group(1)) for m in re.finditer(r"^round (\d+) \|", output, re.MULTILINE)]
    metrics = [m["round"] for m in read_jsonl(run / "metrics.jsonl")]
    events = sorted({e["round"] for e in read_jsonl(run / "events.jsonl") if "round" in e})
    assert console == metrics == events == [0, 1, 2]
    report = json.loads(_cli(["report", str(run), "--json"]))
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2] and report["spread"]["final_val_acc"]["round"] == [0, 1, 2]
    # round_0000N.pt is where round N starts: N rounds are done, and resuming from it plays round N next
    for number, path in list_checkpoints(run / "checkpoints"):
        assert load_checkpoint(path)["round"] == number
        assert sum(1 for m in metrics if m < number) == number
    assert [n for n, _ in list_checkpoints(run / "checkpoints")] == [1, 2, 3]  # keep_checkpoints = 3 by default


def test_a_run_s_config_json_runs_it_again_line_for_line(ppo_run) -> None:
    run, _ = ppo_run
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["task"]["name"] == "synthetic"  # "auto" is saved resolved, so it cannot drift
    _cli(["run", "--config", str(run / "config.json"), "--name", "again", "--run-dir", str(run.parent)])
    again = run.parent / "again"
    for name in ("events.jsonl", "metrics.jsonl"):
        expected, actual = reproducible(read_jsonl(run / name)), reproducible(read_jsonl(again / name))
        assert expected and actual == expected, name
    renamed = {**saved["config"], "run": {**saved["config"]["run"], "name": "again"}}
    assert json.loads((again / "config.json").read_text())["config"] == renamed


def test_summary_totals_stay_true_across_resumes(tmp_path) -> None:
    config = str(write_config(tmp_path, RANDOM_RUN))
    _cli(["run", "--config", config, "--run-dir", str(tmp_path), "--name", "r", "--rounds", "1"])
    first = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (first["rounds_completed"], first["rounds_planned"]) == (1, 1)
    output = _cli(["resume", str(tmp_path / "r"), "--rounds", "2"])  # past the plan
    assert "round 1 is next" in output
    second = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (second["rounds_completed"], second["rounds_planned"]) == (3, 3)
    assert second["wall_time_s"] > first["wall_time_s"] > 0  # both sessions counted
    assert second["env_steps"] == 3 * 2
    assert "3 of 3 planned round(s) done" in _cli(["resume", str(tmp_path / "r")])
    newest = load_checkpoint(list_checkpoints(tmp_path / "r" / "checkpoints")[-1][1])
    assert newest["config"]["run"]["rounds"] == 3
    assert newest["totals"]["wall_time_s"] == pytest.approx(second["wall_time_s"], abs=0.5)


@pytest.mark.parametrize(("keep", "expected"), [(0, [0, 1, 2, 3]), (2, [2, 3])])
def test_keep_checkpoints_is_obeyed(tmp_path, keep: int, expected: list[int]) -> None:
    config = str(write_config(tmp_path, RANDOM_RUN, {"run": {"keep_checkpoints": keep}}))
    _cli(["run", "--config", config, "--run-dir", str(tmp_path), "--name", "k", "--rounds", "3"])
    assert [n for n, _ in list_checkpoints(tmp_path / "k" / "checkpoints")] == expected


def test_wall_time_never_shrinks_across_a_resume_even_with_slow_checkpoint_writes(tmp_path, monkeypatch) -> None:
    """Regression (seen on CI's slow disk): the summary counted the last checkpoint's write, which the
    checkpoint itself cannot hold, so a resumed run's total could come out below the first session's."""
    import time

    import esper_core.run.runner as runner_module

    real_save = runner_module.save_checkpoint

    def slow_save(*args, **kwargs):
        time.sleep(0.5)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(runner_module, "save_checkpoint", slow_save)
    config = str(write_config(tmp_path, RANDOM_RUN))
    _cli(["run", "--config", config, "--run-dir", str(tmp_path), "--name", "r", "--rounds", "1"])
    first = json.loads((tmp_path / "r" / "summary.json").read_text())["wall_time_s"]
    monkeypatch.setattr(runner_module, "save_checkpoint", real_save)  # the resumed session writes fast
    _cli(["resume", str(tmp_path / "r"), "--rounds", "1"])
    second = json.loads((tmp_path / "r" / "summary.json").read_text())["wall_time_s"]
    assert 0 < first < second
