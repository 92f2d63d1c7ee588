"""A run killed with SIGKILL mid-round leaves a loadable checkpoint (atomic writes) that resumes; Ctrl-C
(SIGINT) finishes the current step, writes a checkpoint and exits cleanly with code 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from esper_core.run.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from esper_core.cli import main
from esper_core.run.telemetry import read_jsonl
from support.run_configs import write_config

#: Enough rounds that the run is still going when the signal arrives; each round is short.
LONG_RUN = {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 6, "rounds": 50}}


def _start(tmp_path: Path, name: str) -> subprocess.Popen:
    config = write_config(tmp_path, LONG_RUN)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "esper_core.cli", "run", "--config", str(config), "--run-dir", str(tmp_path), "--name", name],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _wait_mid_round(process: subprocess.Popen, run: Path, timeout: float = 120.0) -> None:
    """Until a checkpoint after round 1 exists and the next round has taken at least one step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        done = [r for r, _ in list_checkpoints(run / "checkpoints")]
        if done and max(done) >= 1:
            current = max(done)
            actions = [e for e in read_jsonl(run / "events.jsonl") if e["type"] == "action" and e["round"] == current]
            if actions:
                return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the run did not reach the middle of round 2 within {timeout}s")


def test_sigkill_mid_round_leaves_a_loadable_checkpoint_that_resumes(tmp_path):
    process = _start(tmp_path, "killed")
    run = tmp_path / "killed"
    _wait_mid_round(process, run)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()
    path = latest_checkpoint(run / "checkpoints")
    payload = load_checkpoint(path)
    assert payload["round"] >= 1 and len(payload["envs"]) == 2
    for _, other in list_checkpoints(run / "checkpoints"):
        load_checkpoint(other)  # every complete file loads; torn temporaries are never listed
    result = CliRunner().invoke(main, ["resume", str(run), "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(latest_checkpoint(run / "checkpoints"))["round"] == payload["round"] + 1
    events = read_jsonl(run / "events.jsonl")
    rounds = [e["round"] for e in events if e["type"] == "round_end"]
    assert rounds == list(range(payload["round"] + 1))  # the killed round's partial events are gone


def test_sigint_finishes_the_step_writes_a_checkpoint_and_exits_cleanly(tmp_path):
    process = _start(tmp_path, "stopped")
    run = tmp_path / "stopped"
    _wait_mid_round(process, run)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    assert "interrupted" in output and "esper resume" in output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    events = read_jsonl(run / "events.jsonl")
    assert [e["type"] for e in events][-2:] == ["run_interrupted", "run_end"]
    interrupted = events[-2]
    assert interrupted["step"] >= 1  # the step in flight was finished, not abandoned
    payload = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert payload["round"] == interrupted["round"]  # the checkpoint of the interrupted round's start
    result = CliRunner().invoke(main, ["resume", str(run), "--rounds", "1"])
    assert result.exit_code == 0, result.output
