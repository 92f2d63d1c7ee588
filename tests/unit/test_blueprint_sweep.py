"""benchmarks/blueprint_sweep.py: the gain over no growth it reports, and its summary-only mode."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from support.benchmark_scripts import load_benchmark_script

sweep = load_benchmark_script("blueprint_sweep")

accuracy = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def rows_of(plans: list[str], accs: list[list[float]]) -> list[dict]:
    """One row per (seed, env); env i of every seed follows plans[i]."""
    return [
        {"seed": seed, "env": env, "plan": plan, "test_acc": acc, "final_val_acc": acc, "host_params": 100}
        for seed, seed_accs in enumerate(accs) for env, (plan, acc) in enumerate(zip(plans, seed_accs))
    ]


@given(st.integers(1, 4), st.integers(1, 3), st.data())
def test_gain_is_measured_against_the_mean_of_each_runs_controls(reps: int, seeds: int, data: st.DataObject) -> None:
    plans = ["none"] * reps + ["r0c1:norm"] * reps
    accs = [data.draw(st.lists(accuracy, min_size=len(plans), max_size=len(plans))) for _ in range(seeds)]
    summary = {row["plan"]: row for row in sweep.summarise(rows_of(plans, accs))}

    none_gain = summary["none"]["test_gain_over_none"]["mean"]
    assert math.isclose(none_gain, 0.0, abs_tol=1e-12)  # the control never gains over itself
    expected = [a - sum(seed_accs[:reps]) / reps for seed_accs in accs for a in seed_accs[reps:]]
    assert math.isclose(summary["r0c1:norm"]["test_gain_over_none"]["mean"], sum(expected) / len(expected), abs_tol=1e-12)


def test_summarise_only_rewrites_the_summary_from_the_rows(tmp_path: Path) -> None:
    rows = rows_of(["none", "none", "r0c2:conv_small", "r0c2:conv_small"], [[0.2, 0.4, 0.5, 0.5]])
    (tmp_path / "sweep.json").write_text(json.dumps({"argv": [], "summary": "stale", "envs": rows}))

    assert sweep.main(["--out", str(tmp_path), "--summarise-only"]) == 0

    document = json.loads((tmp_path / "sweep.json").read_text())
    by_plan = {r["plan"]: r for r in document["summary"]}
    assert math.isclose(by_plan["r0c2:conv_small"]["test_gain_over_none"]["mean"], 0.2)
    assert document["envs"] == rows
    assert "r0c2:conv_small" in (tmp_path / "sweep.md").read_text()


def test_summarise_only_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(SystemExit, match="sweep.json"):
        sweep.main(["--out", str(tmp_path), "--summarise-only"])
