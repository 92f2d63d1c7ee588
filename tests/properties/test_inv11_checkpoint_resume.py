"""Invariant 11: save at a round boundary, load, resume -> the same next actions, rewards and policy
losses as the uninterrupted run with the same seed, on a toy CNN on images and on a tiny gpt on bytes
(``support.sequence_fakes``). Also: any weights_only-safe payload round-trips."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from esper_core.run.checkpoint import load_checkpoint, save_checkpoint
from esper_core.config import (
    ActionsConfig, DeviceConfig, EsperConfig, HostConfig, LifecycleConfig, PolicyConfig, RewardConfig, RunConfig,
    TaskConfig, TrainingConfig,
)
from esper_core.run.rundir import RunDir
from esper_core.run.runner import Runner
from esper_core.events import WALL_CLOCK_EVENTS
from esper_core.run.telemetry import read_jsonl
from support.run_fakes import POLICIES, RunnerRegistry
from support.sequence_fakes import BYTES_TASK, GPT_HOST, LORA, SequenceRunnerRegistry

#: topology -> (registry class, task, host, the blueprint the policy may germinate)
TOPOLOGIES = {
    "cnn": (RunnerRegistry, "toy", "toy", "conv"),
    "transformer": (SequenceRunnerRegistry, BYTES_TASK.name, GPT_HOST.name, LORA.name),
}


def _config(seed: int, envs: int, topology: str = "cnn") -> EsperConfig:
    _, task, host, blueprint = TOPOLOGIES[topology]
    return EsperConfig(
        run=RunConfig(envs=envs, episode_length=2, rounds=3, seed=seed),
        task=TaskConfig(name=task),
        host=HostConfig(name=host),
        policy=PolicyConfig(name="learner"),
        reward=RewardConfig(name="acc"),
        training=TrainingConfig(batch_size=32, epoch_samples=32, eval_batch_size=64),
        lifecycle=LifecycleConfig(min_training_epochs=1, min_prune_age=1, embargo_epochs=1, resetting_epochs=1),
        actions=ActionsConfig(tempos=(1, 2), alpha_targets=(0.5, 1.0), blueprints=(blueprint,)),
        device=DeviceConfig(device="cpu"),
    )


def _lines(run: RunDir) -> list[dict]:
    records = read_jsonl(run.events_path) + read_jsonl(run.metrics_path)
    return [{k: v for k, v in r.items() if k != "timing"} for r in records if r.get("type") not in WALL_CLOCK_EVENTS]


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), envs=st.integers(1, 2), split=st.integers(1, 2))
def test_resume_at_any_round_boundary_replays_the_uninterrupted_run(topology: str, seed: int, envs: int, split: int) -> None:
    registry, config = TOPOLOGIES[topology][0], _config(seed, envs, topology)
    with tempfile.TemporaryDirectory() as root:
        straight = Runner.build(config, registry(POLICIES), run_dir=RunDir.create(root, "straight"))
        straight.start()
        straight.run(3)
        first = Runner.build(config, registry(POLICIES), run_dir=RunDir.create(root, "split"))
        first.start()
        first.run(split)
        path = Path(root) / "split" / "checkpoints" / f"round_{split:05d}.pt"
        resumed = Runner.build(config, registry(POLICIES), run_dir=first.run_dir)
        resumed.restore(load_checkpoint(path), str(path))
        resumed.run(3 - split)
        assert _lines(straight.run_dir) == _lines(first.run_dir)
        assert torch.equal(straight.policy.weight, resumed.policy.weight)


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.text(max_size=8),
    st.floats(allow_nan=False),
    st.lists(st.floats(allow_nan=False, width=32), max_size=4).map(lambda xs: torch.tensor(xs, dtype=torch.float32)),
)
_payload = st.recursive(
    _leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=12,
)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isinf(a):
        return a == b
    return a == b and type(a) is type(b)


@settings(deadline=None)
@given(_payload)
def test_any_safe_payload_round_trips_through_an_atomic_checkpoint(value) -> None:
    with tempfile.TemporaryDirectory() as root:
        path = save_checkpoint(Path(root) / "round_00000.pt", {"value": value})
        assert _same(load_checkpoint(path)["value"], value)
        assert [p.name for p in Path(root).iterdir()] == ["round_00000.pt"]  # no temporary left behind


@given(st.binary(max_size=4))
def test_bytes_are_refused_at_save_time_because_weights_only_load_can_refuse_them(value) -> None:
    with tempfile.TemporaryDirectory() as root:
        with pytest.raises(TypeError, match=r"\['value'\]"):
            save_checkpoint(Path(root) / "round_00000.pt", {"value": value})
        assert list(Path(root).iterdir()) == []
