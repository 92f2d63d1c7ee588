"""A run writes runs/NAME/config.toml (the resolved config, every plugin option with its help, as `esper
config show` prints it); `--config` on it reproduces the run, and resume is not confused by it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from esper_core.cli import main
from esper_core.config.loading import load_config
from esper_core.plugins.loader import load_registry
from esper_core.run.config_document import describe_config, resolved_config
from esper_core.validators import setting_help

TINY = (
    "--preset", "cpu-quick", "--device", "cpu", "--envs", "2", "--rounds", "2", "--episode-length", "2",
    "--seed", "5", "--set", "task.options.train_size=64", "--set", "task.options.val_size=32",
    "--set", "task.options.test_size=32", "--set", "policy.options.lr=0.002",
)


def _run(tmp_path: Path, *args: str) -> None:
    result = CliRunner().invoke(main, ["run", "--quiet", "--run-dir", str(tmp_path / "runs"), *args])
    assert result.exit_code == 0, result.output


def _metrics(run: Path) -> list[dict]:
    """metrics.jsonl without what depends on the clock."""
    rows = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows.append({k: v for k, v in row.items() if not any(word in k for word in ("time", "timing", "per_s"))})
    return rows


def test_config_toml_reproduces_the_run(tmp_path: Path) -> None:
    _run(tmp_path, *TINY, "--task", "auto", "--data-dir", str(tmp_path), "--name", "first")
    first = tmp_path / "runs" / "first"
    toml_path = first / "config.toml"
    # the resolved configuration, exactly: the same as config.json's (task auto resolved, preset recorded,
    # the plugins' options in full, so compared once both are resolved)
    registry = load_registry()
    resolved = lambda path: resolved_config(describe_config(load_config(path), registry))  # noqa: E731
    assert resolved(toml_path) == resolved(first / "config.json")
    assert tomllib.loads(toml_path.read_text())["task"]["name"] == "synthetic"
    _run(tmp_path, "--config", str(toml_path), "--name", "again")
    again = tmp_path / "runs" / "again"
    assert _metrics(again) == _metrics(first) and _metrics(first)
    assert resolved(again / "config.json").run.name == "again"


def test_config_toml_reads_like_config_show(tmp_path: Path) -> None:
    _run(tmp_path, *TINY, "--task", "synthetic", "--name", "r")
    text = (tmp_path / "runs" / "r" / "config.toml").read_text()
    data = tomllib.loads(text)
    spec = load_registry().get("policy", "ppo_v2")
    assert data["policy"]["options"]["lr"] == 0.002
    lines = text.splitlines()
    for name in setting_help(spec.options_type):
        if isinstance(data["policy"]["options"].get(name), dict):
            continue  # a sub-table: its help sits above its [header]
        line = next(i for i, l in enumerate(lines) if l.startswith((f"{name} =", f"# {name}: unset")))
        assert lines[line - 1].startswith("# "), name  # its help sits right above it
    shown = CliRunner().invoke(main, ["config", "show", "--config", str(tmp_path / "runs" / "r" / "config.toml")])
    assert shown.exit_code == 0, shown.output
    body = lambda t: [l for l in t.splitlines() if l and not l.startswith("# esper")]  # noqa: E731
    assert body(shown.stdout) == body(text)  # one renderer: the run's file is what config show prints


def test_resume_is_not_confused_by_config_toml_and_old_runs_without_it_resume(tmp_path: Path) -> None:
    tiny = (*TINY[:6], "--rounds", "1", *TINY[8:], "--task", "synthetic")
    for name in ("new", "old"):
        _run(tmp_path, *tiny, "--name", name)
    (tmp_path / "runs" / "old" / "config.toml").unlink()  # a run directory from before config.toml
    for name in ("new", "old"):
        result = CliRunner().invoke(main, ["resume", "--quiet", str(tmp_path / "runs" / name), "--rounds", "1"])
        assert result.exit_code == 0, result.output
        assert len(_metrics(tmp_path / "runs" / name)) == 2
    assert _metrics(tmp_path / "runs" / "new") == _metrics(tmp_path / "runs" / "old")
    assert not (tmp_path / "runs" / "old" / "config.toml").exists()  # resume writes no new files
