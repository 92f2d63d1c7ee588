"""Runs of a study as concurrent ``esper`` subprocesses, within a wall-clock budget, resumable.

Shared by ``growth_study.py`` and ``blueprint_sweep.py``. A run is started with ``esper run ... --name NAME``
the first time; a later call finds its checkpoint and continues it with ``esper resume`` (the rest of its
planned rounds). At the budget every live run gets SIGINT, finishes its step and writes a checkpoint, so a
study longer than one device call is the same command called again. Nothing here imports esper: the
scripts work wherever the ``esper`` command (or ``python -m esper_core.cli``) does.
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import attrs

#: Seconds a run gets after SIGINT to finish its step and checkpoint before it is killed.
GRACE_S = 90.0


@attrs.frozen
class Planned:
    """One run: its directory name under the runs dir, the ``esper run`` arguments, its planned rounds."""

    name: str
    args: tuple[str, ...]
    rounds: int


def esper_command(text: str | None) -> list[str]:
    return shlex.split(text) if text else [sys.executable, "-m", "esper_core.cli"]


def summary(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "summary.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def finished(run_dir: Path, rounds: int) -> bool:
    info = summary(run_dir) or {}
    return max(int(info.get("rounds_completed", 0)), rounds_done(run_dir)) >= rounds


def has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").glob("round_*.pt"))


def rounds_done(run_dir: Path) -> int:
    """Rounds behind the newest checkpoint (``round_00003.pt``: 3 done)."""
    return max((int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("round_*.pt")), default=0)


def command_for(run: Planned, runs_dir: Path, esper: list[str]) -> list[str] | None:
    """``esper run`` for a new run, ``esper resume`` for one with a checkpoint, None for a finished one."""
    where = runs_dir / run.name
    if finished(where, run.rounds):
        return None
    if has_checkpoint(where):
        todo = run.rounds - rounds_done(where)  # may go past the plan the run was started with
        return None if todo <= 0 else [*esper, "resume", str(where), "--rounds", str(todo), "--quiet"]
    if where.exists():  # killed before its first checkpoint: keep it aside, start afresh
        where.rename(where.with_name(f"{where.name}.broken-{int(time.time())}"))
    return [*esper, "run", *run.args, "--rounds", str(run.rounds), "--run-dir", str(runs_dir), "--name", run.name, "--quiet"]


def run_all(
    runs: Sequence[Planned], runs_dir: Path, logs_dir: Path, esper: list[str], max_parallel: int, budget_s: float | None
) -> dict[str, str]:
    """Run (or continue) every run, at most ``max_parallel`` at once, until done or the budget is spent.
    Returns name -> "finished", "stopped" (SIGINT at the budget), "failed (rc N)" or "not started"."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    logs_dir.mkdir(parents=True, exist_ok=True)
    deadline = math.inf if budget_s is None else time.monotonic() + budget_s
    todo = list(runs)
    live: dict[str, subprocess.Popen] = {}
    status: dict[str, str] = {}
    stopping = False
    while todo or live:
        while todo and len(live) < max_parallel and not stopping:
            run = todo.pop(0)
            command = command_for(run, runs_dir, esper)
            if command is None:
                status[run.name] = "finished"
                continue
            log = open(logs_dir / f"{run.name}.log", "a")
            log.write(f"$ {shlex.join(command)}\n")
            log.flush()
            live[run.name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            log.close()
        if not stopping and time.monotonic() >= deadline:
            stopping = True
            for process in live.values():
                process.send_signal(signal.SIGINT)
            stop_at = time.monotonic() + GRACE_S
        if stopping and time.monotonic() >= stop_at:
            for process in live.values():
                process.kill()
        for name, process in list(live.items()):
            rc = process.poll()
            if rc is None:
                continue
            del live[name]
            run = next(r for r in runs if r.name == name)
            if finished(runs_dir / name, run.rounds):
                status[name] = "finished"
            else:
                status[name] = "stopped" if stopping else f"failed (rc {rc}; see {logs_dir / (name + '.log')})"
        time.sleep(0.5)
    for run in todo:
        status.setdefault(run.name, "not started")
    return status


def evaluate(run_dir: Path, esper: list[str], log: Path) -> dict[str, Any] | None:
    """``esper eval`` (held-out test accuracy per env) unless ``eval.json`` already belongs to the last
    checkpoint; the parsed ``eval.json``, or None when the run cannot be evaluated yet."""
    if not has_checkpoint(run_dir):
        return None
    latest = rounds_done(run_dir)
    existing = run_dir / "eval.json"
    if existing.exists():
        try:
            result = json.loads(existing.read_text())
            if int(result.get("round", -1)) == latest:
                return result
        except ValueError:
            pass
    with open(log, "a") as out:
        rc = subprocess.call([*esper, "eval", str(run_dir), "--json"], stdout=subprocess.DEVNULL, stderr=out)
    if rc != 0 or not existing.exists():
        return None
    return json.loads(existing.read_text())


def read_jsonl(path: Path, contains: str | None = None) -> list[dict[str, Any]]:
    """Records of a JSON-lines file (only lines containing ``contains``, cheaply, when given); a torn last
    line (a run killed mid-write) is skipped."""
    out = []
    try:
        with open(path) as lines:
            for line in lines:
                if contains is not None and contains not in line:
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        return []
    return out


def mean_se(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean and standard error of the mean (None for the error with fewer than two values)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "se": None, "n": 0}
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "se": None, "n": n}
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return {"mean": mean, "se": math.sqrt(var / n), "n": n}


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sxx * syy)


def pyplot() -> Any:
    """matplotlib's pyplot (Agg), or None with a notice: the JSON never depends on plotting."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; the JSON and tables are written, the plots are skipped")
        return None
    return plt
