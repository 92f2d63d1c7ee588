"""`esper report` on real run directories (one run: its figures; several: a comparison) and `esper eval`'s
options (a chosen checkpoint, several episodes, another device, JSON, earlier results kept)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from esper_core.cli import main
from support.run_configs import BUSY_HEURISTIC, write_config

HEURISTIC_RUN = {
    "host": {"name": "tiny_cnn"}, "policy": {"name": "heuristic", "options": BUSY_HEURISTIC},
    "run": {"episode_length": 6, "seed": 2, "rounds": 2},
}


def _cli(args: list[str]) -> CliRunner:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    config = str(write_config(root, HEURISTIC_RUN))
    _cli(["run", "--config", config, "--run-dir", str(root), "--name", "a"])
    config = str(write_config(root, {**HEURISTIC_RUN, "policy": {"name": "random"}}))
    _cli(["run", "--config", config, "--run-dir", str(root), "--name", "b", "--seed", "3"])
    return root / "a", root / "b"


def test_one_run_gets_its_titled_figures(runs) -> None:
    pytest.importorskip("matplotlib")
    run, _ = runs
    output = _cli(["report", str(run)]).output
    assert output.startswith("run a: synthetic / tiny_cnn / heuristic / contribution, 2 envs x 6 steps, seed 2")
    for name in ("curves", "lifecycle", "morphology"):
        assert f"plot: {run / 'report' / name}.png" in output and (run / "report" / f"{name}.png").stat().st_size > 0
    assert "final morphology (last episode)" in output and "min-max over envs" in output


def test_several_runs_are_compared(runs, tmp_path) -> None:
    out = tmp_path / "cmp"
    result = _cli(["report", *map(str, runs), "--out", str(out), "--window", "1"])
    assert "| a | 2 |" in result.output and "| b | 2 |" in result.output
    comparison = json.loads((out / "compare.json").read_text())
    assert [r["run"] for r in comparison["runs"]] == ["a", "b"]
    assert comparison["runs"][0]["per_round"]["round"] == [0, 1] and comparison["runs"][0]["envs"] == 2
    assert (out / "compare.md").read_text() == comparison["markdown"]
    for run in runs:
        assert (run / "report" / "report.json").is_file()  # each run's own report comes along
    default = _cli(["report", *map(str, runs), "--json"])
    assert json.loads(default.output)["runs"][1]["run"] == "b"
    assert (runs[0].parent / "compare-a-b" / "compare.json").is_file()


def test_eval_options_and_kept_results(runs) -> None:
    run, _ = runs
    first = json.loads(_cli(["eval", str(run), "--json", "--no-observers"]).stdout)
    assert first["round"] == 2 and first["episodes"] == 1 and len(first["envs"]) == 2
    older = json.loads(_cli(["eval", str(run), "--checkpoint", "1", "--episodes", "2", "--device", "cpu", "--json"]).stdout)
    assert older["round"] == 1 and older["checkpoint"].endswith("round_00001.pt") and older["devices"] == ["cpu"]
    assert sorted((r["env"], r["episode"]) for r in older["envs"]) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert older["mean_test_acc"] == pytest.approx(sum(r["test_acc"] for r in older["envs"]) / 4)
    again = json.loads(_cli(["eval", str(run), "--json", "--no-observers"]).stdout)
    assert again["envs"] == first["envs"]  # deterministic
    kept = sorted(p.name for p in run.glob("eval-*.json"))
    assert kept == ["eval-1-1.json", "eval-2-1.json", "eval-2-2.json"]
    assert json.loads((run / "eval-1-1.json").read_text()) == older
    assert json.loads((run / "eval.json").read_text()) == again  # the latest


def test_eval_names_a_missing_checkpoint(runs) -> None:
    run, _ = runs
    result = CliRunner().invoke(main, ["eval", str(run), "--checkpoint", "7"])
    assert result.exit_code == 1
    assert "--checkpoint 7: no checkpoint file at" in result.stderr and "rounds with one: 0, 1, 2" in result.stderr
