"""A run directory is used by one process at a time and survives OS faults (issue 13): creation is atomic,
``run``/``resume``/``eval`` hold an exclusive lock ("in use by pid N"), leftovers of a killed process are
cleaned, a damaged newest checkpoint falls back to the newest intact one, a full disk or a read-only
directory ends in a message (and at start leaves nothing behind), never in a traceback or mixed files."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.run_configs import write_config

from esper_core.cli import main
from esper_core.run.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from esper_core.run.lock import RunDirInUseError, RunDirLock
from esper_core.run.rundir import RunDir, RunDirError
from esper_core.run.telemetry import JsonlSink, read_jsonl

RUN = {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 2, "rounds": 2, "envs": 1}}


def _invoke(args: list[str]):
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def _start(tmp_path: Path, name: str, *extra: str):
    config = write_config(tmp_path, RUN)
    return _invoke(["run", "--config", str(config), "--run-dir", str(tmp_path), "--name", name, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-round run to copy from (its files are never changed)."""
    root = tmp_path_factory.mktemp("finished")
    assert _start(root, "done").exit_code == 0
    return root / "done"


def _copy(run: Path, where: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, where / run.name))


def _rounds(run: Path) -> list[int]:
    return [m["round"] for m in read_jsonl(run / "metrics.jsonl")]


# ------------------------------------------------------------------------------------- creation
def test_of_many_creators_racing_for_one_name_exactly_one_gets_it(tmp_path):
    for attempt in range(20):
        barrier, won, lost = threading.Barrier(6), [], []

        def create() -> None:
            barrier.wait()
            try:
                won.append(RunDir.create(tmp_path, f"race{attempt}"))
            except RunDirError as error:
                lost.append(str(error))

        threads = [threading.Thread(target=create) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1 and len(lost) == 5, (won, lost)
        assert all("already exists" in message for message in lost)


def test_a_run_name_too_long_for_the_file_system_is_refused_before_anything_is_made(tmp_path):
    with pytest.raises(RunDirError, match="at most 200"):
        RunDir.create(tmp_path, "x" * 300)
    assert list(tmp_path.iterdir()) == []


def test_a_run_dir_that_is_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "plain").write_text("not a directory")
    with pytest.raises(RunDirError, match="a file is in the way|not a directory"):
        RunDir.create(tmp_path / "plain", "r")
    with pytest.raises(RunDirError, match="is a file, not a run directory"):
        RunDir.open(tmp_path / "plain")


# ----------------------------------------------------------------------------------------- lock
def test_the_lock_excludes_a_second_holder_and_names_the_first(tmp_path):
    with RunDirLock(tmp_path, "esper resume"):
        with pytest.raises(RunDirInUseError, match=rf"in use by pid {os.getpid()} \(esper resume\)"):
            RunDirLock(tmp_path).acquire()
    with RunDirLock(tmp_path):  # released on exit
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from esper_core.run.lock import RunDirLock; "
         f"RunDirLock({str(tmp_path)!r}, 'holder').acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirInUseError, match=rf"pid {holder.pid} \(holder\)"):
        RunDirLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    holder.stdout.close()
    with RunDirLock(tmp_path):
        pass


@pytest.mark.parametrize("command", ["resume", "eval"])
def test_a_run_in_use_is_refused_and_its_files_are_untouched(tmp_path, finished, command):
    run = _copy(finished, tmp_path)
    before = {p.name: p.read_bytes() for p in (run / "events.jsonl", run / "metrics.jsonl")}
    with RunDirLock(run, "esper resume"):
        result = _invoke([command, str(run), *(["--rounds", "1"] if command == "resume" else [])])
    assert result.exit_code == 1
    assert f"is in use by pid {os.getpid()} (esper resume)" in result.output
    assert {p.name: p.read_bytes() for p in (run / "events.jsonl", run / "metrics.jsonl")} == before


# ------------------------------------------------------------------------------ leftovers, damage
def test_resume_removes_temporaries_a_killed_process_left(tmp_path, finished):
    run = _copy(finished, tmp_path)
    stale = [run / ".summary.json.424242.tmp", run / "checkpoints" / ".round_00003.pt.424242.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    result = _invoke(["resume", str(run), "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in stale)
    assert "removed 2 unfinished temporary file(s)" in result.output


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, finished, damage):
    run = _copy(finished, tmp_path)
    newest = latest_checkpoint(run / "checkpoints")
    data = newest.read_bytes()
    newest.write_bytes({"truncated": data[: len(data) // 3], "garbage": os.urandom(4096), "empty": b""}[damage])
    result = _invoke(["resume", str(run), "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert f"cannot read checkpoint {newest}" in result.output and "newest intact checkpoint" in result.output
    assert "resuming" in result.output and "round 1 is next" in result.output
    assert _rounds(run) == [0, 1]  # round 1 replayed from the round-1 checkpoint, nothing doubled
    assert load_checkpoint(newest)["round"] == 2  # rewritten whole


def test_no_intact_checkpoint_at_all_is_a_message(tmp_path, finished):
    run = _copy(finished, tmp_path)
    for _, path in list_checkpoints(run / "checkpoints"):
        path.write_bytes(b"not a checkpoint")
    result = _invoke(["resume", str(run)])
    assert result.exit_code == 1 and "is intact" in result.output and "start it again" in result.output


# ----------------------------------------------------------------------------------- disk full
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_start_leaves_nothing_behind_and_the_name_can_be_used_again(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _no_space)  # the first write of the run (config.json) fails
        result = _start(tmp_path, "full")
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "free some space" in result.output
    assert "config.json" in result.output and "esper resume" not in result.output  # nothing to resume
    assert not (tmp_path / "full").exists()
    assert _start(tmp_path, "full").exit_code == 0


def test_a_full_disk_mid_run_stops_with_a_message_and_resume_continues_cleanly(tmp_path, monkeypatch):
    original = JsonlSink.write
    calls = {"n": 0}

    def fills_up(self, record):
        calls["n"] += 1
        if calls["n"] > 16:  # in round 1 (a round of this run writes about 12 lines)
            _no_space()
        return original(self, record)

    with monkeypatch.context() as patch:
        patch.setattr(JsonlSink, "write", fills_up)
        result = _start(tmp_path, "mid", "--rounds", "3")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "No space left on device" in text and f"esper resume {tmp_path / 'mid'}" in text
    resumed = _invoke(["resume", str(tmp_path / "mid")])
    assert resumed.exit_code == 0, resumed.output
    assert _rounds(tmp_path / "mid") == [0, 1, 2]
    events = read_jsonl(tmp_path / "mid" / "events.jsonl")
    assert [e["round"] for e in events if e["type"] == "round_end"] == [0, 1, 2]


# ------------------------------------------------------------------------------------ read-only
def _read_only(run: Path):
    """``os.open`` refusing to create or write anything under ``run`` (a read-only mount, as root too)."""
    real_open = os.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def guarded(path, flags, *args, **kwargs):
        if flags & writing and Path(os.path.abspath(path)).is_relative_to(run):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    return guarded


def test_eval_of_a_read_only_run_directory_refuses_before_computing_anything(tmp_path, finished, monkeypatch):
    run = _copy(finished, tmp_path)
    monkeypatch.setattr(os, "open", _read_only(run.resolve()))
    monkeypatch.setattr("esper_core.run.runner.Runner.evaluate", lambda self: pytest.fail("evaluated anyway"))
    result = _invoke(["eval", str(run)])
    assert result.exit_code == 1
    assert "not writable" in result.output and "cp -r" in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the test above simulates it instead")
def test_eval_of_a_chmod_read_only_run_directory_refuses(tmp_path, finished):
    run = _copy(finished, tmp_path)
    (run / ".lock").unlink(missing_ok=True)
    run.chmod(0o555)
    try:
        result = _invoke(["eval", str(run)])
    finally:
        run.chmod(0o755)
    assert result.exit_code == 1 and "not writable" in result.output


# ---------------------------------------------------------------------------------------- threads
def test_more_threads_than_cpus_are_cut_to_the_cpu_count_with_a_notice():
    import torch

    from esper_core.run.setup import usable_threads

    heard: list[str] = []
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_threads(100_000, heard.append) == available
    assert "device.threads=100000" in heard[0] and f"{available} CPU(s)" in heard[0]
    assert usable_threads(1, heard.append) == 1 and len(heard) == 1
    assert torch.get_num_threads() >= 1


def test_export_elsewhere_reads_a_read_only_run_directory_without_its_lock(tmp_path, finished, monkeypatch):
    run = _copy(finished, tmp_path)
    monkeypatch.setattr(os, "open", _read_only(run.resolve()))
    refused = _invoke(["export", str(run)])  # would write RUN_DIR/export
    assert refused.exit_code == 1 and "not writable" in refused.output
    result = _invoke(["export", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "reading it without taking its lock" in result.output
    assert (tmp_path / "out" / "env0" / "manifest.json").is_file()
