"""SIGTERM (a scheduler's stop, ``kill PID``) is handled like Ctrl-C: the step finishes, a checkpoint is
written, exit 130; and while one process holds a run, a second ``esper resume`` of it is refused instead
of writing its own rounds into the same files (issue 13: metrics ended ``0 1 2 4 3 4 5 5``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from test_run_signals import _start, _wait_mid_round

from esper_core.cli import main
from esper_core.run.checkpoint import latest_checkpoint, load_checkpoint
from esper_core.run.telemetry import read_jsonl

pytestmark = pytest.mark.slow


def _resume_process(run) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "esper_core.cli", "resume", str(run), "--rounds", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _wait_resumed_and_stepping(process: subprocess.Popen, run, timeout: float = 120.0) -> None:
    """Until the resumed process has written its run_start and taken at least one step after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        types = [(e["type"], e.get("resumed_at_round")) for e in read_jsonl(run / "events.jsonl")]
        starts = [i for i, (kind, resumed) in enumerate(types) if kind == "run_start" and resumed is not None]
        if starts and any(kind == "action" for kind, _ in types[starts[-1]:]):
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the resumed run took no step within {timeout}s")


def _wait_for_lock_holder(run, pid: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lock = run / ".lock"
        if lock.exists() and lock.read_text().split()[:1] == [str(pid)]:
            return
        time.sleep(0.05)
    raise AssertionError("the resume process never took the lock")


def test_sigterm_finishes_the_step_and_a_second_resume_meanwhile_is_refused(tmp_path):
    first = _start(tmp_path, "shared")
    run = tmp_path / "shared"
    _wait_mid_round(first, run)
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 130, output
    assert "Traceback" not in output and "interrupted" in output

    holder = _resume_process(run)
    try:
        _wait_for_lock_holder(run, holder.pid)
        second = CliRunner().invoke(main, ["resume", str(run), "--rounds", "1"])
        assert second.exit_code == 1 and f"in use by pid {holder.pid}" in second.output, second.output
        _wait_resumed_and_stepping(holder, run)
        holder.send_signal(signal.SIGTERM)
        output, _ = holder.communicate(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert holder.returncode == 130, output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    rounds = [m["round"] for m in read_jsonl(run / "metrics.jsonl")]
    assert rounds == list(range(len(rounds)))  # one writer: no round twice, none out of order
    events = read_jsonl(run / "events.jsonl")
    assert [e["round"] for e in events if e["type"] == "round_end"] == rounds
    assert load_checkpoint(latest_checkpoint(run / "checkpoints"))["round"] == len(rounds)
