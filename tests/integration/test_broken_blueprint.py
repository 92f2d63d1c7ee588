"""A blueprint that breaks its contract (changes the tensor shape, or its factory raises) is disabled for
the run with a notice instead of crashing it (issue 13: it surfaced as an IllegalActionError traceback, and
resuming replayed the crash); the disabled set is in every checkpoint, so a resumed run masks and plays
exactly like the uninterrupted one."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import attrs
import pytest
import torch
from torch import nn

from esper_core.config import (
    ActionsConfig, DeviceConfig, EsperConfig, HostConfig, LifecycleConfig, PolicyConfig, RewardConfig, RunConfig,
    TaskConfig, TrainingConfig,
)
from esper_core.events import WALL_CLOCK_EVENTS
from esper_core.ops import Op
from esper_core.run.checkpoint import load_checkpoint
from esper_core.run.rundir import RunDir
from esper_core.run.runner import Runner
from esper_core.run.telemetry import read_jsonl
from esper_core.specs import BlueprintSpec
from support.run_fakes import CONV, POLICIES, RunnerRegistry


class Halves(nn.Module):
    """Breaks the contract: halves the spatial size."""

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _raises(channels: int, spatial: int) -> nn.Module:
    raise RuntimeError("this factory is broken on purpose")


def _exits(channels: int, spatial: int) -> nn.Module:
    sys.exit(3)


BROKEN = {
    "shape": BlueprintSpec(name="halves", description="wrong shape", factory=Halves),
    "raises": BlueprintSpec(name="raises", description="factory raises", factory=_raises),
    "exits": BlueprintSpec(name="exits", description="factory calls sys.exit", factory=_exits),
}


def _config(broken: str, rounds: int = 3, seed: int = 0) -> EsperConfig:
    return EsperConfig(
        run=RunConfig(envs=2, episode_length=4, rounds=rounds, seed=seed),
        task=TaskConfig(name="toy"),
        host=HostConfig(name="toy"),
        policy=PolicyConfig(name="learner"),
        reward=RewardConfig(name="acc"),
        training=TrainingConfig(batch_size=32, epoch_samples=32, eval_batch_size=64),
        lifecycle=LifecycleConfig(min_training_epochs=1, min_prune_age=1, embargo_epochs=1, resetting_epochs=1),
        actions=ActionsConfig(tempos=(1, 2), alpha_targets=(0.5, 1.0), blueprints=(broken, "conv")),
        device=DeviceConfig(device="cpu"),
    )


def _registry(broken: str) -> RunnerRegistry:
    spec = BROKEN[broken]
    return RunnerRegistry(POLICIES, blueprints={spec.name: spec, "conv": CONV})


def _lines(run: RunDir) -> list[dict]:
    records = read_jsonl(run.events_path) + read_jsonl(run.metrics_path)
    return [{k: v for k, v in r.items() if k != "timing"} for r in records if r.get("type") not in WALL_CLOCK_EVENTS]


def _germinations(run: RunDir, blueprint: str) -> list[dict]:
    return [
        e for e in read_jsonl(run.events_path)
        if e["type"] == "action" and e["op"] == Op.GERMINATE.name and e["values"]["blueprint"] == blueprint
    ]


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_broken_blueprint_is_disabled_with_a_notice_and_the_run_completes(tmp_path, broken):
    name = BROKEN[broken].name
    notices: list[str] = []
    registry = _registry(broken)

    class Heard:
        quiet = True

        def __getattr__(self, attribute):
            return lambda *args, **kwargs: None

        def notice(self, text: str) -> None:
            notices.append(text)

    for seed in range(6):  # until the policy has tried the broken blueprint (it usually does at once)
        root = tmp_path / f"seed{seed}"
        runner = Runner.build(_config(name, seed=seed), registry, run_dir=RunDir.create(root, "r"), progress=Heard())
        runner.start()
        outcome = runner.run(3)
        runner.close()
        tried = _germinations(runner.run_dir, name)
        if tried:
            break
    assert outcome.status == "completed" and tried, "the random policy never chose the broken blueprint"
    assert all(e["ok"] is False for e in tried)  # refused, reported as a failed action
    first = min((e["round"], e["step"]) for e in tried)
    assert all((e["round"], e["step"]) == first for e in tried), "offered again after it was disabled"
    warned = [n for n in notices if name in n and "disabled for the rest of this run" in n]
    assert len(warned) == 1 and "strict-plugins" in warned[0]
    payload = load_checkpoint(runner.run_dir.checkpoints / "round_00003.pt")
    assert all(env["disabled"]["blueprint"] == [name] for env in payload["envs"])
    disabled = [e for e in read_jsonl(runner.run_dir.events_path) if e["type"] == "plugin_disabled"]
    assert disabled and {(e["kind"], e["name"]) for e in disabled} == {("blueprint", name)}  # an event observers see
    assert {(e["round"], e["env"], e["step"]) for e in disabled} == {(e["round"], e["env"], e["step"]) for e in tried}
    assert all("broke its contract" in e["reason"] for e in disabled)


@pytest.mark.parametrize("split", [1, 2])  # resume before the blueprint is disabled (round 1) and after it
def test_resuming_after_a_blueprint_was_disabled_replays_the_uninterrupted_run(split):
    name = BROKEN["shape"].name
    with tempfile.TemporaryDirectory() as root:
        straight = Runner.build(_config(name), _registry("shape"), run_dir=RunDir.create(root, "straight"))
        straight.start()
        straight.run(3)
        assert _germinations(straight.run_dir, name), "the scenario needs the broken blueprint tried"
        first = Runner.build(_config(name), _registry("shape"), run_dir=RunDir.create(root, "split"))
        first.start()
        first.run(split)
        path = Path(root) / "split" / "checkpoints" / f"round_{split:05d}.pt"
        resumed = Runner.build(_config(name), _registry("shape"), run_dir=first.run_dir)
        resumed.restore(load_checkpoint(path), str(path))
        resumed.run(3 - split)
        assert _lines(straight.run_dir) == _lines(first.run_dir)
        assert torch.equal(straight.policy.weight, resumed.policy.weight)


def test_an_old_checkpoint_without_a_disabled_set_restores_with_none_disabled():
    from esper_core.run.quarantine import PluginQuarantine

    quarantine = PluginQuarantine()
    quarantine.load_state_dict(None)
    assert quarantine.blueprints == () and quarantine.styles == ()


class Shrinks(nn.Module):
    """A blend style that breaks its contract: returns a quarter of the features."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return h[..., ::2, ::2]


def test_a_blend_style_that_breaks_its_contract_is_disabled_the_same_way(tmp_path):
    from esper_core.specs import BlendStyleSpec
    from support.run_fakes import ADD

    registry = RunnerRegistry(POLICIES, blueprints={"conv": CONV})
    registry._specs["blend_style"] = {"add": ADD, "shrinks": BlendStyleSpec(
        name="shrinks", description="wrong shape", formula="h[::2, ::2]", factory=Shrinks)}
    config = attrs.evolve(_config("halves"), actions=ActionsConfig(tempos=(1, 2), alpha_targets=(0.5, 1.0), blueprints=("conv",)))
    runner = Runner.build(config, registry, run_dir=RunDir.create(tmp_path, "r"))
    runner.start()
    assert runner.run(3).status == "completed"
    tried = [e for e in read_jsonl(runner.run_dir.events_path)
             if e["type"] == "action" and e["op"] == Op.GERMINATE.name and e["values"]["style"] == "shrinks"]
    assert tried and all(e["ok"] is False for e in tried)
    assert len({(e["round"], e["step"]) for e in tried}) == 1
    payload = load_checkpoint(runner.run_dir.checkpoints / "round_00003.pt")
    assert all(env["disabled"] == {"blueprint": [], "blend_style": ["shrinks"]} for env in payload["envs"])
