"""The wandb observer, offline (WANDB_MODE=offline, files under the run directory): one W&B run per Esper
run, continued by `esper resume` with every round logged once, and `esper eval` in a W&B run of its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from esper_core.cli import main
from esper_core.run.telemetry import read_jsonl
from support.run_configs import SMALL_PPO, write_config
from support.wandb_records import history, offline_runs

pytest.importorskip("wandb")

PPO_RUN = {"policy": {"name": "ppo_v2", "options": SMALL_PPO}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 3}}


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    return tmp_path


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _settled_rows(files: list[Path], expected_steps: list[int], timeout: float = 20.0) -> list:
    """The logged rows once W&B's writer process has flushed them: its service writes the offline file
    asynchronously, and on a loaded 2-core machine the last record of a session landed after ``finish``
    returned (seen twice in a full-suite run, never alone). Waits at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [row for f in files for row in history(f)]
        if [step for step, _ in rows] == expected_steps or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def test_an_offline_run_is_continued_by_resume_and_each_round_is_logged_once(offline: Path) -> None:
    config = str(write_config(offline, PPO_RUN))
    _cli("run", "--config", config, "--run-dir", str(offline), "--name", "w", "--rounds", "2", "--observer", "wandb", "-q")
    run = offline / "w"
    state = json.loads((run / "wandb" / "esper-wandb.json").read_text())
    assert state["last_round"] == 1
    (run / "checkpoints" / "round_00002.pt").unlink()  # the run died after logging round 1: resume replays it
    _cli("resume", str(run), "--rounds", "2", "-q")

    files = offline_runs(run)
    assert [f.name for f in files] == [f"run-{state['id']}.wandb"] * 2  # both sessions continue one W&B run
    rows = _settled_rows(files, expected_steps=[0, 1, 2])
    steps = [step for step, _ in rows]
    assert steps == [0, 1, 2]  # round 1 was replayed but not logged twice
    metrics = read_jsonl(run / "metrics.jsonl")
    for (step, values), line in zip(rows, metrics):
        assert values["env/mean_final_val_acc"] == pytest.approx(line["env"]["mean_final_val_acc"])
        assert {"env/mean_return", "env/action_mix/WAIT", "episode/env1/host_params", "policy/approx_kl"} <= set(values)

    _cli("eval", str(run))
    evaluation = [f for f in offline_runs(run) if f.name != f"run-{state['id']}.wandb"]
    assert len(evaluation) == 1  # a W&B run of its own, so the training steps are left alone
    ((_, values),) = history(evaluation[0])
    assert {"eval/mean_test_acc", "eval/env0/test_acc", "eval/env1/final_val_acc"} <= set(values)


def test_a_tampered_state_file_is_refused_with_its_path(offline: Path) -> None:
    config = str(write_config(offline, {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 2}}))
    _cli("run", "--config", config, "--run-dir", str(offline), "--name", "w", "--rounds", "1", "--observer", "wandb", "-q")
    state = offline / "w" / "wandb" / "esper-wandb.json"
    state.write_text(json.dumps({"id": "../../etc", "last_round": 0}))
    result = CliRunner().invoke(main, ["resume", str(offline / "w"), "--rounds", "1"])
    assert result.exit_code == 0, result.output  # an observer never stops the run ...
    assert "esper-wandb.json must hold" in result.output  # ... but says what is wrong, naming the file


def test_the_report_s_figures_go_to_the_run_summary_as_images(tmp_path: Path) -> None:
    """Summary, not history: the rounds' steps stay one per round however often the run was resumed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import wandb

    from esper_sinks.wandb_sink import WandbObserver, WandbOptions

    figure, axis = plt.subplots(figsize=(2, 2))
    axis.plot([0, 1], [0, 1])
    png = tmp_path / "mean_return.png"
    figure.savefig(png)
    plt.close(figure)

    class FakeRun:
        summary: dict = {}

    observer = WandbObserver(WandbOptions())
    observer._run = FakeRun()
    observer.on_event({"type": "report_written", "round": 2, "figures": {"mean_return": str(png), "gone": str(tmp_path / "x.png")}})
    assert set(FakeRun.summary) == {"report/mean_return"} and isinstance(FakeRun.summary["report/mean_return"], wandb.Image)
