"""The Ray backend on a local Ray cluster (two CPUs): env units as actors, the learner in the test process.

Tolerance: none. Actors build the same envs (same indices, seeds, device kind, one torch thread) and the
learner is the same code, so a Ray run's events and metrics equal a local run's line for line (wall-clock
values aside). An actor killed mid-round is replaced and the round replayed from its start: the run's
metrics are again exactly the local run's, and one ``group_restarted`` event tells of the replay.
"""

from __future__ import annotations

import shutil
from typing import Any, Callable, Iterator

import pytest

ray = pytest.importorskip("ray")

from esper_core.config.loading import deep_merge, load_config  # noqa: E402
from esper_core.config.sections import EsperConfig  # noqa: E402
from esper_core.plugins.loader import load_registry  # noqa: E402
from esper_core.run.backend import choose_backend  # noqa: E402
from esper_core.run.checkpoint import checkpoint_path, load_checkpoint  # noqa: E402
from esper_core.run.ray_backend import RayBackend  # noqa: E402
from esper_core.run.rundir import RunDir  # noqa: E402
from esper_core.run.runner import Runner  # noqa: E402
from esper_core.run.telemetry import read_jsonl  # noqa: E402
from support.run_configs import SMALL, SMALL_PPO, reproducible  # noqa: E402

ROUNDS = 2
LENGTH = 3


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _config() -> EsperConfig:
    """Two device entries (both the CPU): two units of one env, so two actors."""
    return load_config(overrides=deep_merge(SMALL, {
        "run": {"envs": 2, "episode_length": LENGTH, "rounds": ROUNDS, "seed": 11},
        "policy": {"name": "ppo_v2", "options": SMALL_PPO},
        "device": {"devices": ["cpu", "cpu"]},
    }))


def _play(tmp_path: Any, name: str, backend: str, before: Callable[[Runner], None] = lambda runner: None,
          rounds: int = ROUNDS) -> tuple[Runner, list[dict], list[dict]]:
    runner = Runner.build(
        _config(), load_registry(), run_dir=RunDir.create(tmp_path, name), backend=choose_backend(backend)
    )
    try:
        runner.start()
        before(runner)
        runner.run(rounds)
    finally:
        runner.close()
    return runner, read_jsonl(runner.run_dir.events_path), read_jsonl(runner.run_dir.metrics_path)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runner, list[dict], list[dict]]:
    return _play(tmp_path_factory.mktemp("local"), "local", "local")


@pytest.fixture(scope="module")
def ray_run(ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Runner, list[dict], list[dict]]:
    return _play(tmp_path_factory.mktemp("ray"), "ray", "ray")


def test_a_ray_run_matches_the_local_run_exactly(ray_run, local_run) -> None:
    runner, events, metrics = ray_run
    assert isinstance(runner.backend, RayBackend) and runner.backend.members == [(0,), (1,)]
    _, local_events, local_metrics = local_run
    assert any(e["type"] == "seed_transition" for e in events)  # the lifecycle was exercised
    assert reproducible(events) == reproducible(local_events)
    assert reproducible(metrics) == reproducible(local_metrics)
    # The checkpoint is a local run's: the same env states, resumable by either backend.
    ray_payload = load_checkpoint(checkpoint_path(runner.run_dir.checkpoints, ROUNDS))
    local_payload = load_checkpoint(checkpoint_path(local_run[0].run_dir.checkpoints, ROUNDS))
    assert ray_payload["devices"] == local_payload["devices"] == ["cpu"] * 2
    for ray_env, local_env in zip(ray_payload["envs"], local_payload["envs"]):
        assert ray_env["episode"] == local_env["episode"] == ROUNDS - 1
        assert ray_env["generator"].equal(local_env["generator"])


def test_a_ray_run_resumes_locally_where_it_stopped(ray_run, local_run, tmp_path) -> None:
    """Round 1 again, in this process, from the Ray run's checkpoint after round 0 (a copy of its run dir)."""
    copy = tmp_path / "ray"
    shutil.copytree(ray_run[0].run_dir.root, copy)
    run_dir = RunDir(copy)
    resumed = Runner.build(_config(), load_registry(), run_dir=run_dir)
    try:
        resumed.restore(load_checkpoint(checkpoint_path(run_dir.checkpoints, 1)))
        resumed.run(ROUNDS - 1)
    finally:
        resumed.close()
    _, local_events, local_metrics = local_run
    assert reproducible(read_jsonl(run_dir.metrics_path)) == reproducible(local_metrics)
    assert reproducible(read_jsonl(run_dir.events_path)) == reproducible(local_events)


def test_a_killed_actor_is_restarted_and_the_round_replayed_with_the_same_results(
    ray_cluster, local_run, tmp_path
) -> None:
    def kill_mid_round(runner: Runner) -> None:
        backend = runner.backend
        assert isinstance(backend, RayBackend)
        step, calls = backend.step, []

        def step_then_die(actions: Any) -> Any:
            calls.append(len(calls))
            if len(calls) == LENGTH + 2:  # round 1, its second step
                ray.kill(backend.actors[1], no_restart=True)
            return step(actions)

        backend.step = step_then_die  # type: ignore[method-assign]

    runner, events, metrics = _play(tmp_path, "killed", "ray", kill_mid_round)
    restarts = [e for e in events if e["type"] == "group_restarted"]
    assert [(e["round"], e["units"], e["attempt"]) for e in restarts] == [(1, [1], 1)]
    assert runner.backend.restarts == 1  # type: ignore[attr-defined]
    _, local_events, local_metrics = local_run
    assert reproducible(metrics) == reproducible(local_metrics)
    assert reproducible(events) == reproducible(local_events)  # the lost attempt's events were cut back
    assert runner.round == ROUNDS
