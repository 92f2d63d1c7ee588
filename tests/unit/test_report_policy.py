"""`esper report`'s policy-health section: series from conventional metric keys, warning counts by kind,
a bounded text table, a plot, and nothing at all for a policy that does not learn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from esper_core.cli.report import build_report, render_report, write_report
from esper_core.cli.report import TABLE_ROUNDS, policy_health, warning_kind
from esper_core.run.rundir import RunDir


def _round(r: int, policy: dict[str, Any]) -> dict[str, Any]:
    env = {"mean_final_val_acc": 0.5, "mean_return": 1.0, "germinated": 1, "fossilized": 0, "pruned": 0}
    return {"round": r, "env": env, "policy": policy}


def _learning(r: int) -> dict[str, Any]:
    return {
        "approx_kl": 0.01 * (r + 1),
        "explained_variance": None if r == 0 else 0.1 * r,
        "entropy_relevant/op": 0.9 - 0.1 * r,
        "entropy_relevant/blueprint": None if r == 1 else 0.8,
        "entropy/op": 0.5,  # unconditional entropy is not the health signal
        "warnings": ["entropy_low[op]: conditional entropy 0.05 < 0.1"] * (r % 2) + ["kl_near_zero: joint approx KL"],
    }


def _run(tmp_path: Path, metrics: list[dict[str, Any]]) -> RunDir:
    run = RunDir.create(tmp_path, "r")
    run.config_path.write_text(json.dumps({"config": {}}))
    run.metrics_path.write_text("".join(json.dumps(m) + "\n" for m in metrics))
    run.events_path.write_text("")
    return run


def test_warning_kinds_keep_the_head_and_drop_the_message() -> None:
    assert warning_kind("entropy_low[blueprint]: conditional entropy 0.05") == "entropy_low[blueprint]"
    assert warning_kind("kl_near_zero: joint approx KL 1e-9") == "kl_near_zero"


def test_series_follow_the_conventional_keys() -> None:
    health = policy_health([_round(r, _learning(r)) for r in range(3)])
    assert health is not None
    assert health["round"] == [0, 1, 2]
    assert health["approx_kl"] == pytest.approx([0.01, 0.02, 0.03])
    assert health["explained_variance"][0] is None and health["explained_variance"][2] == pytest.approx(0.2)
    assert set(health["entropy_relevant"]) == {"op", "blueprint"}
    assert health["entropy_relevant"]["blueprint"] == [0.8, None, 0.8]
    assert health["warnings_per_round"] == [1, 2, 1]
    assert health["warning_counts"] == {"kl_near_zero": 3, "entropy_low[op]": 1}


def test_no_section_for_a_policy_that_does_not_learn(tmp_path: Path) -> None:
    run = _run(tmp_path, [_round(r, {}) for r in range(3)])
    report = build_report(run)
    assert report["policy_health"] is None
    assert "policy health" not in render_report(report)


def test_report_shows_the_newest_rounds_the_lowest_head_and_the_warning_totals(tmp_path: Path) -> None:
    n = TABLE_ROUNDS + 5
    run = _run(tmp_path, [_round(r, _learning(r)) for r in range(n)])
    text = render_report(build_report(run))
    section = text.split("policy health per update")[1]
    assert f"(last {TABLE_ROUNDS} of {n})" in section
    lines = [line for line in section.splitlines() if line.strip()[:1].isdigit()]
    assert [int(line.split()[0]) for line in lines] == list(range(5, n))
    assert "(op)" in lines[-1]  # op's conditional entropy falls below blueprint's 0.8
    assert f"kl_near_zero x{n}" in text


def test_write_report_plots_policy_health(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = _run(tmp_path, [_round(r, _learning(r)) for r in range(4)])
    _, plots, why_not = write_report(run)
    assert why_not is None
    assert run.report_dir / "policy_health.png" in plots
    assert (run.report_dir / "policy_health.png").stat().st_size > 0
