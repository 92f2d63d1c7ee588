"""Env backends in this process: device units, one thread per device, and how a backend is chosen.

Two entries naming the same CPU make two units stepped in two threads; the results must be exactly those
of one device stepping every env (the units share nothing, and the phases that touch the global
generators run one unit after another).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from esper_core.config.loading import deep_merge, load_config
from esper_core.plugins.loader import load_registry
from esper_core.run.backend import LocalBackend, choose_backend
from esper_core.run.env_unit import unit_members
from esper_core.run.rundir import RunDir
from esper_core.run.runner import Runner
from esper_core.run.setup import SetupError
from esper_core.run.telemetry import read_jsonl
from support.benchmark_scripts import load_benchmark_script
from support.run_configs import SMALL, SMALL_PPO, reproducible


def test_units_follow_device_entries_and_join_where_a_fused_group_spans_entries() -> None:
    assert unit_members(5, 2) == [(0, 2, 4), (1, 3)]
    assert unit_members(3, 1) == [(0, 1, 2)]
    assert unit_members(2, 4) == [(0,), (1,)]  # entries without envs make no unit
    assert unit_members(4, 2, [[0, 1, 2, 3]]) == [(0, 1, 2, 3)]  # cpu,cpu fused: one group, one unit
    assert unit_members(6, 3, [[0, 3], [1, 4]]) == [(0, 3), (1, 4), (2, 5)]


def _run(tmp_path: Any, name: str, **device: Any) -> tuple[Runner, list[dict], list[dict]]:
    tree = deep_merge(SMALL, {
        "run": {"envs": 4, "episode_length": 4, "rounds": 2, "seed": 3},
        "policy": {"name": "ppo_v2", "options": SMALL_PPO},
        "device": device,
    })
    runner = Runner.build(load_config(overrides=tree), load_registry(), run_dir=RunDir.create(tmp_path, name))
    try:
        runner.start()
        runner.run(2)
    finally:
        runner.close()
    return runner, read_jsonl(runner.run_dir.events_path), read_jsonl(runner.run_dir.metrics_path)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runner, list[dict], list[dict]]:
    return _run(tmp_path_factory.mktemp("one"), "one", device="cpu")


def test_two_device_units_step_in_threads_with_the_results_of_one_device(tmp_path, one_device) -> None:
    runner, events, metrics = _run(tmp_path, "two", devices=["cpu", "cpu"])
    assert isinstance(runner.backend, LocalBackend)
    assert [len(unit.envs) for unit in runner.backend.units] == [2, 2]
    assert runner.backend._pool is not None  # two units: a thread each
    _, one_events, one_metrics = one_device
    assert len(events) == len(one_events) and any(e["type"] == "seed_transition" for e in events)
    assert reproducible(events) == reproducible(one_events)
    assert reproducible(metrics) == reproducible(one_metrics)


def test_choosing_a_backend_names_the_fix_when_it_cannot(monkeypatch) -> None:
    assert choose_backend("local") is LocalBackend
    with pytest.raises(SetupError, match="--ray-address needs --backend ray"):
        choose_backend("local", "ray://head:10001")
    with pytest.raises(SetupError, match="unknown; choose one of local, ray"):
        choose_backend("dask")
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    monkeypatch.setitem(sys.modules, "esper_core.run.ray_backend", None)
    with pytest.raises(SetupError, match=r"pip install 'esper-grow\[ray\]'"):
        choose_backend("ray")


def test_the_scaling_benchmark_reports_steps_per_second_and_efficiency_per_device_count(tmp_path) -> None:
    script = load_benchmark_script("multi_gpu_scaling")
    out = tmp_path / "scaling.json"
    args = ["--tiny", "--cpu", "--counts", "1,2", "--envs-per-device", "1", "--seconds", "0", "--out", str(out),
            "--set", "run.episode_length=3"]
    result = CliRunner().invoke(script.main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [row["devices"] for row in rows] == [1, 2] and rows[0]["efficiency"] == 1.0
    # --set reaches every count's run (3-step episodes instead of TINY's 2), and the report says what was set.
    assert all(row["env_steps"] == row["rounds"] * row["devices"] * 3 and row["env_steps_per_s"] > 0 for row in rows)
    assert report["settings"] == ["run.episode_length=3"]
