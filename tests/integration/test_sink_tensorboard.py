"""The tensorboard observer: event files TensorBoard's own reader loads, with the expected tags, one point
per round on every curve across a Ctrl-C and `esper resume`, replayed rounds purged, eval kept apart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from esper_core.cli import main
from esper_core.run.telemetry import read_jsonl
from support.run_configs import SMALL_PPO, write_config

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

LONG_RUN = {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 6, "rounds": 50}}
PPO_RUN = {"policy": {"name": "ppo_v2", "options": SMALL_PPO}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 3}}
ROUND_TAGS = {"env/mean_final_val_acc", "env/mean_return", "env/mean_params_added", "env/germinated", "env/action_mix/WAIT"}
EPISODE_TAGS = {f"episode/env{e}/{k}" for e in (0, 1) for k in ("final_val_acc", "episode_return", "host_params", "seed_params")}


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _curves(folder: Path, purge: bool = True) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), purge_orphaned_data=purge)
    accumulator.Reload()
    return accumulator


def _steps(accumulator: EventAccumulator, tag: str) -> list[int]:
    return [point.step for point in accumulator.Scalars(tag)]


def test_curves_continue_without_duplicates_across_sigint_and_resume(tmp_path: Path) -> None:
    from test_run_signals import _wait_mid_round  # the same wait as the signal tests

    config = write_config(tmp_path, LONG_RUN)
    process = subprocess.Popen(
        [sys.executable, "-m", "esper_core.cli", "run", "--config", str(config), "--run-dir", str(tmp_path), "--name", "tb",
         "--observer", "tensorboard"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    run = tmp_path / "tb"
    _wait_mid_round(process, run)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    interrupted_at = [e for e in read_jsonl(run / "events.jsonl") if e["type"] == "run_interrupted"][0]["round"]
    _cli("resume", str(run), "--rounds", "2", "-q")

    metrics = read_jsonl(run / "metrics.jsonl")
    rounds = [m["round"] for m in metrics]
    assert rounds == list(range(interrupted_at + 2))
    curves = _curves(run / "tensorboard")
    tags = set(curves.Tags()["scalars"])
    assert ROUND_TAGS | EPISODE_TAGS <= tags, sorted(ROUND_TAGS | EPISODE_TAGS - tags)
    for tag in ROUND_TAGS | EPISODE_TAGS:
        assert _steps(curves, tag) == rounds, tag  # every round once, in order, across both sessions
    values = [point.value for point in curves.Scalars("env/mean_final_val_acc")]
    assert values == pytest.approx([m["env"]["mean_final_val_acc"] for m in metrics], rel=1e-6)
    assert {"seeds/env0/text_summary", "run/config/text_summary"} <= set(curves.Tags()["tensors"])
    figures = {"report/curves", "report/lifecycle", "report/morphology"}  # the report's figures, as images
    assert figures <= set(curves.Tags()["images"]), curves.Tags()["images"]
    assert [image.step for image in curves.Images("report/curves")] == [rounds[-1] + 1]  # rounds completed


def test_a_replayed_round_is_purged_and_eval_writes_its_own_curves(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, PPO_RUN))
    _cli("run", "--config", config, "--run-dir", str(tmp_path), "--name", "r", "--rounds", "2", "--observer", "tensorboard", "-q")
    run = tmp_path / "r"
    (run / "checkpoints" / "round_00002.pt").unlink()  # as if the run had died after logging round 1
    _cli("resume", str(run), "--rounds", "1", "-q")

    raw = _curves(run / "tensorboard", purge=False)
    assert _steps(raw, "env/mean_return") == [0, 1, 1]  # both sessions logged round 1 ...
    curves = _curves(run / "tensorboard")
    assert _steps(curves, "env/mean_return") == [0, 1]  # ... and TensorBoard shows it once
    policy_tags = {tag for tag in curves.Tags()["scalars"] if tag.startswith("policy/")}
    assert {"policy/approx_kl", "policy/explained_variance", "policy/entropy_relevant/op"} <= policy_tags

    _cli("eval", str(run))
    evaluation = _curves(run / "tensorboard" / "eval")
    assert _steps(evaluation, "eval/mean_test_acc") == [2]  # x = rounds of training behind the policy
    assert {"eval/env0/test_acc", "eval/env1/host_params"} <= set(evaluation.Tags()["scalars"])
    assert "eval/morphology/env0/text_summary" in evaluation.Tags()["tensors"]
    assert _steps(_curves(run / "tensorboard"), "env/mean_return") == [0, 1]  # training curves untouched
