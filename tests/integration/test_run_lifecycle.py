"""`esper run` end to end with the heuristic on the synthetic task: real lifecycle traffic, consistent
bookkeeping, and the run directory that `esper report` and `esper eval` read."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from esper_core.run.checkpoint import latest_checkpoint, load_checkpoint
from esper_core.cli import main
from esper_core.run.telemetry import read_jsonl
from support.run_configs import BUSY_HEURISTIC, write_config


@pytest.fixture(scope="module")
def heuristic_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = write_config(
        root,
        {
            "host": {"name": "resnet_impaired"},
            "policy": {"name": "heuristic", "options": BUSY_HEURISTIC},
            "actions": {"blueprints": ["conv_small", "conv_light"]},
            "run": {"episode_length": 8, "seed": 1},
        },
    )
    result = CliRunner().invoke(main, ["run", "--config", str(config), "--run-dir", str(root), "--name", "h"])
    assert result.exit_code == 0, result.output
    return root / "h", result.output


def test_heuristic_run_shows_real_lifecycle_traffic(heuristic_run):
    run, _ = heuristic_run
    events = read_jsonl(run / "events.jsonl")
    reached = Counter(e["to_stage"] for e in events if e["type"] == "seed_transition")
    assert reached["GERMINATED"] >= 2 and reached["BLENDING"] >= 2 and reached["HOLDING"] >= 1
    assert reached["FOSSILIZED"] >= 1 and reached["PRUNED"] >= 1
    germinations = [e for e in events if e["type"] == "seed_transition" and e["to_stage"] == "GERMINATED"]
    assert all(e["blueprint"] in ("conv_small", "conv_light") for e in germinations)


def test_every_action_is_logged_with_every_head_and_its_legality(heuristic_run):
    run, _ = heuristic_run
    actions = [e for e in read_jsonl(run / "events.jsonl") if e["type"] == "action"]
    assert len(actions) == 2 * 2 * 8  # rounds x envs x steps
    heads = ["op", "slot", "blueprint", "style", "tempo", "alpha_target", "alpha_speed", "alpha_curve"]
    assert all(list(a["indices"]) == heads and list(a["legal"]) == heads and all(a["legal"].values()) for a in actions)


def test_episode_return_equals_the_sum_of_step_rewards(heuristic_run):
    run, _ = heuristic_run
    events = read_jsonl(run / "events.jsonl")
    ends = [e for e in events if e["type"] == "episode_end"]
    assert len(ends) == 4
    for end in ends:
        steps = [e for e in events if e["type"] == "reward" and (e["env"], e["episode"]) == (end["env"], end["episode"])]
        assert len(steps) == end["steps"] == 8
        assert end["episode_return"] == pytest.approx(sum(e["reward"] for e in steps), abs=1e-9)
        assert all(e["reward"] == pytest.approx(sum(e["components"].values()), abs=1e-9) for e in steps)


def test_run_directory_holds_config_metrics_checkpoint_and_summary(heuristic_run):
    run, output = heuristic_run
    described = json.loads((run / "config.json").read_text())
    assert described["config"]["policy"]["name"] == "heuristic"
    assert described["action_layout"]["blueprint"] == ["noop", "conv_small", "conv_light"]
    assert described["plugins"]["policy:heuristic"]["distribution"] == "esper-grow"
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["round"] for m in metrics] == [0, 1]
    assert {"env_steps_per_s", "round_s"} <= set(metrics[0]["timing"])
    checkpoint = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert checkpoint["round"] == 2 and checkpoint["action_layout"] == described["action_layout"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == 32
    assert summary["seeds"]["fossilized"] >= 1 and len(summary["last_episode"]) == 2
    assert "last episode per env" in output and "fossilized" in output


def test_report_and_eval_read_the_run_directory(heuristic_run):
    run, _ = heuristic_run
    events_before = (run / "events.jsonl").read_bytes()
    report = CliRunner().invoke(main, ["report", str(run)])
    assert report.exit_code == 0, report.output
    assert "per blueprint" in report.output and ("conv_small" in report.output or "conv_light" in report.output)
    assert (run / "report" / "report.json").is_file()
    evaluated = CliRunner().invoke(main, ["eval", str(run)])
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads((run / "eval.json").read_text())
    assert len(result["envs"]) == 2 and all(0.0 <= r["test_acc"] <= 1.0 for r in result["envs"])
    assert (run / "events.jsonl").read_bytes() == events_before  # report and eval only read the run
