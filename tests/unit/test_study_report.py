"""benchmarks/study_report.py: the numbers in the study write-ups come from it, so its windows and errors
must be right on runs of different lengths."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

from support.benchmark_scripts import load_benchmark_script

import pytest

def load_script() -> ModuleType:
    return load_benchmark_script("study_report")


def write_run(directory: Path, policy: str, accs_per_round: list[list[float]], with_policy_metrics: bool) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"config": {"policy": {"name": policy}, "run": {"seed": 3}}}))
    events = [{"type": "run_start"}]
    metrics = []
    for r, accs in enumerate(accs_per_round):
        for env, acc in enumerate(accs):
            events.append({
                "type": "episode_end", "round": r, "env": env, "final_val_acc": acc, "episode_return": 10 * acc,
                "params_added": 100 * r, "germinated": 1, "fossilized": r % 2, "pruned": 0, "faults": 0,
                "host_params": 1000,
            })
        policy_metrics = {"approx_kl": 0.01 * (r + 1), "explained_variance": 0.5,
                          "entropy_relevant/op": 0.7, "entropy_relevant/blueprint": None}
        metrics.append({"round": r, "policy": policy_metrics if with_policy_metrics else {}})
    (directory / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    (directory / "metrics.jsonl").write_text("\n".join(json.dumps(m) for m in metrics) + "\n")
    return directory


def test_windows_means_and_standard_errors(tmp_path: Path) -> None:
    script = load_script()
    run = write_run(tmp_path / "a", "ppo_v2", [[0.1, 0.3], [0.2, 0.2], [0.5, 0.7], [0.6, 0.6]], True)
    row = script.summarise(run, window=2)
    assert row["policy"] == "ppo_v2" and row["seed"] == 3 and row["rounds"] == 4 and row["episodes"] == 8
    assert row["first"]["final_val_acc"]["rounds"] == [0, 1]
    assert row["first"]["final_val_acc"]["mean"] == pytest.approx(0.2)
    last = row["last"]["final_val_acc"]
    assert last["rounds"] == [2, 3] and last["episodes"] == 4 and last["mean"] == pytest.approx(0.6)
    assert last["stderr"] == pytest.approx(math.sqrt(((0.1**2) * 2) / 3) / 2)  # sample std / sqrt(n)
    assert row["per_round"]["final_val_acc"] == pytest.approx([0.2, 0.2, 0.6, 0.6])
    assert row["last"]["params_added"]["mean"] == pytest.approx(250.0)
    assert row["fossilized"] == 4 and row["policy_updates"] == 4
    assert row["approx_kl_mean"] == pytest.approx(0.025)
    assert row["conditional_entropy_last_update"] == {"op": 0.7}  # None (no decision) is left out


def test_markdown_handles_a_policy_without_update_metrics_and_a_one_episode_window(tmp_path: Path) -> None:
    script = load_script()
    learner = script.summarise(write_run(tmp_path / "l", "ppo_v2", [[0.5]], True))
    control = script.summarise(write_run(tmp_path / "s", "static", [[0.4], [0.45]], False))
    assert learner["last"]["final_val_acc"]["stderr"] is None
    text = script.markdown([learner, control])
    assert "| l | 1 | 0.500 | 0.500 |" in text and "| s | 2 | 0.425 ± 0.025 | 0.425 ± 0.025 |" in text
    assert "| l | 0.70 |" in text and "| s | " not in text.split("Conditional")[1]


def test_rolling_mean_starts_at_the_first_round() -> None:
    assert load_script().rolling([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


def test_main_writes_summary_table_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    script = load_script()
    runs = [write_run(tmp_path / name, name, [[0.2, 0.4], [0.5, 0.5]], name == "ppo") for name in ("ppo", "static")]
    out = tmp_path / "out"
    script.main([str(out), *map(str, runs), "--window", "1"])
    rows = json.loads((out / "summary.json").read_text())
    assert [r["run"] for r in rows] == ["ppo", "static"] and rows[0]["last"]["final_val_acc"]["mean"] == 0.5
    assert "| static | 2 | 0.300 ± 0.100 | 0.500 ± 0.000 |" in (out / "table.md").read_text()
    assert (out / "curves.png").stat().st_size > 0
