"""`task auto` picks a task the chosen host can read: `esper run --host gpt` with no `--task` trains on
pysource (a sequence task) instead of refusing the image task that outranks it, `esper config show` says the
same, and a CNN host still gets synthetic when no CIFAR-10 data is there. Tiny runs, CPU, one round."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from esper_core.cli import main
from support.sequence_fakes import tiny_python_tree

COMMON = ("--preset", "cpu-quick", "--device", "cpu", "--envs", "1", "--rounds", "1", "--episode-length", "2")


def _run(tmp_path: Path, name: str, *flags: str) -> dict:
    args = (*COMMON, "--data-dir", str(tmp_path / "data"), *flags)  # an empty data dir: no CIFAR-10
    shown = CliRunner().invoke(main, ["config", "show", "--json", *args])
    assert shown.exit_code == 0, shown.output
    ran = CliRunner().invoke(main, ["run", "--run-dir", str(tmp_path / "runs"), "--name", name, *args])
    assert ran.exit_code == 0, ran.output
    recorded = json.loads((tmp_path / "runs" / name / "config.json").read_text())
    assert json.loads(shown.stdout)["task"]["name"] == recorded["config"]["task"]["name"]  # show and run agree
    return {"recorded": recorded, "output": ran.output, "shown": shown.output}


def test_gpt_without_a_task_runs_on_pysource(tmp_path: Path) -> None:
    result = _run(
        tmp_path, "gpt", "--host", "gpt",
        "--set", f"task.options.root={tiny_python_tree(tmp_path / 'py')}", "--set", "task.options.sequence_length=8",
        "--set", "training.epoch_samples=32", "--set", "training.val_samples=16",
        "--set", "host.options.width=16", "--set", "host.options.heads=2",
        "--set", "policy.options.feature_dim=16", "--set", "policy.options.lstm_dim=16",
    )
    assert result["recorded"]["config"]["task"]["name"] == "pysource"
    assert result["recorded"]["metric"]["name"] == "bits_per_byte"
    assert "task auto -> pysource" in result["output"]


def test_resnet_without_a_task_still_runs_on_synthetic(tmp_path: Path) -> None:
    result = _run(
        tmp_path, "resnet", "--host", "resnet",
        "--set", "host.options.widths=[8,8,8]", "--set", "host.options.blocks=[1,1,1]",
        "--set", "task.options.train_size=64", "--set", "task.options.val_size=32",
        "--set", "task.options.test_size=32",
        "--set", "training.epoch_samples=32",
    )
    assert result["recorded"]["config"]["task"]["name"] == "synthetic"
    assert "task auto -> synthetic (not found in" in result["output"] and "cifar10" in result["output"]
