"""benchmarks/morphology_churn.py: the share of a group's epochs in which some env's seed changed stage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from support.benchmark_scripts import load_benchmark_script

script = load_benchmark_script("morphology_churn")


def write_run(run_dir: Path, rounds: int, steps: int, envs: int, transitions: list[tuple[int, int, int, str]]) -> Path:
    """A run directory whose events.jsonl has a step per (round, step, env) and the given transitions
    (round, step, env, to_stage)."""
    run_dir.mkdir()
    lines = [{"type": "step", "round": r, "step": s, "env": e} for r in range(rounds) for s in range(steps) for e in range(envs)]
    lines += [{"type": "seed_transition", "round": r, "step": s, "env": e, "to_stage": to} for r, s, e, to in transitions]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"type": "step", "ro')  # torn tail
    return run_dir


def test_counts_epochs_of_the_group_not_of_each_env(tmp_path: Path) -> None:
    # 4 rounds x 2 steps = 8 group epochs; two envs change stage in the same epoch: one epoch with a change.
    run = write_run(tmp_path / "r", 4, 2, 3, [(0, 0, 0, "GERMINATED"), (0, 0, 2, "TRAINING"), (3, 1, 1, "BLENDING")])
    numbers = script.churn(run)
    assert numbers["envs"] == 3 and numbers["rounds"] == 4
    assert numbers["all"]["epochs"] == 8
    assert math.isclose(numbers["all"]["share_with_a_stage_change"], 2 / 8)
    assert math.isclose(numbers["all"]["share_with_a_germination"], 1 / 8)
    assert math.isclose(numbers["all"]["stage_changes_per_epoch"], 3 / 8)
    # the last quarter of 4 rounds is round 3: 2 epochs, one with a change, no germination
    assert numbers["last_quarter"]["epochs"] == 2
    assert math.isclose(numbers["last_quarter"]["share_with_a_stage_change"], 0.5)
    assert numbers["last_quarter"]["share_with_a_germination"] == 0.0


def test_a_directory_without_steps_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no 'step' events"):
        script.churn(tmp_path / "empty")


def test_main_writes_the_json_it_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "r", 2, 1, 2, [(1, 0, 0, "GERMINATED")])
    assert script.main([str(run), "--out", str(tmp_path / "churn.json")]) == 0
    document = json.loads((tmp_path / "churn.json").read_text())
    assert document["runs"][0]["all"]["share_with_a_germination"] == 0.5
    assert "a stage change in 50%" in capsys.readouterr().out
