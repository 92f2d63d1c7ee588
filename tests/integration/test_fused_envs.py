"""Fused env groups (CPU, float32): N envs trained as one wide network reproduce the same N envs trained
one by one from the same seeds, over whole episodes in which seeds germinate, train, blend, hold,
fossilize and are pruned; a host that cannot be fused trains as before after one notice.

Tolerance: every action, stage transition and count is identical; every float in the events agrees
within 1e-4. Measured on this test (2 rounds x 8 steps x 3 envs of resnet_impaired): worst difference
5.6e-6 under ATEN_CPU_CAPABILITY=default, 6.4e-7 under avx2 and avx512; the grouped convolution sums in
another order than the plain one.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import attrs

import pytest
import torch
from torch import nn

from esper_core.api import PolicySpec, SlotPoint, hookimpl
from esper_core.config import load_config
from esper_core.plugins import registry_from_plugins
from esper_core.run.rundir import RunDir
from esper_core.run.runner import Runner
from esper_core.run.telemetry import read_jsonl
from esper_core.config.loading import deep_merge
from support.run_configs import BUSY_HEURISTIC
from support.run_fakes import NAN
from support.walkers import MaskWalker
from esper_core.growth.counterfactual import SlotContribution, contributions
from esper_core.records import TaskMetric
from esper_core.specs import BlueprintSpec, HostSpec, TaskSpec
from esper_tasks.synthetic import SyntheticOptions, SyntheticTask

TOLERANCE = 1e-4
#: Op logits (WAIT, GERMINATE, SET_ALPHA_TARGET, PRUNE, FOSSILIZE, ADVANCE) that walk seeds through the
#: whole lifecycle, with the odd prune.
WALK = (0.0, 3.0, -1.0, 3.0, 6.0, 6.0)


class LifecycleWalker(MaskWalker):
    """Samples legal actions from its masks with op logits biased toward growth (its own generator)."""

    OP_LOGITS = WALK


class LoudSeed(nn.Module):
    """A 1x1 convolution with random weights: unlike the built-ins it is not silent at germination, so once
    blended its counterfactual contribution is large from the first epoch."""

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        nn.init.normal_(self.conv.weight, std=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


LOUD = BlueprintSpec(name="loud", description="random 1x1 conv", factory=LoudSeed)


class ChannelMixingHost(nn.Module):
    """Looks widenable (convs, a linear) but its forward sums over all channels: must not be fused."""

    topology = "cnn"

    def __init__(self, options: Any, info: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(info.in_channels, 4, 3, padding=1)
        self.slots = nn.ModuleDict({"only": nn.Identity()})
        self.head = nn.Linear(4, info.num_classes)
        self.size = info.image_size

    def slot_points(self) -> tuple[SlotPoint, ...]:
        return (SlotPoint("only", 4, self.size),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.slots["only"](torch.relu(self.conv(x)))
        return self.head(h.mean(dim=(2, 3)) + h.mean(dim=(1, 2, 3)).unsqueeze(1))


#: Metrics whose score is not raw accuracy: the loss (as language tasks declare) and accuracy above chance.
METRICS = {
    "nll": TaskMetric(name="nll", from_loss=True, worst=math.log(10), best=0.0),
    "above_chance": TaskMetric(name="accuracy above chance", worst=0.1, best=1.0),
}


def _scored_task(metric: TaskMetric) -> Any:
    """The synthetic task, judged by ``metric`` instead of accuracy."""

    def factory(options: Any) -> Any:
        task = SyntheticTask(options)

        class Scored:
            def available(self, data_dir: Any) -> bool:
                return True

            def load(self, data_dir: Any, device: torch.device, seed: int) -> Any:
                data = task.load(data_dir, device, seed)
                return attrs.evolve(data, info=attrs.evolve(data.info, metric=metric))

        return Scored()

    return factory


class TestPlugin:
    @hookimpl
    def esper_tasks(self) -> list[TaskSpec]:
        return [
            TaskSpec(name=f"synthetic_{name}", description=f"synthetic judged by {name}", factory=_scored_task(metric),
                     options_type=SyntheticOptions)
            for name, metric in METRICS.items()
        ]

    @hookimpl
    def esper_policies(self) -> list[PolicySpec]:
        return [PolicySpec(name="walker", description="lifecycle walker", factory=LifecycleWalker)]

    @hookimpl
    def esper_hosts(self) -> list[HostSpec]:
        return [HostSpec(name="mixing", description="mixes channels", factory=ChannelMixingHost, topology="cnn")]

    @hookimpl
    def esper_blueprints(self) -> list[Any]:
        return [NAN, LOUD]


def _run(tmp_path, fused: str, host: str = "resnet_impaired", envs: int = 3, rounds: int = 2, **changes: Any):
    config = load_config(
        overrides=deep_merge({
            "task": {"name": "synthetic", "options": {"train_size": 256, "val_size": 96, "test_size": 32}},
            "training": {"epoch_samples": 96, "batch_size": 32, "val_samples": 96, "eval_batch_size": 96},
            "run": {"episode_length": 8, "envs": envs, "rounds": rounds, "seed": 1},
            "lifecycle": {"min_training_epochs": 1, "min_prune_age": 1, "embargo_epochs": 1, "resetting_epochs": 1},
            "actions": {"tempos": [1, 2], "blueprints": ["conv_light", "norm", "conv_small"]},
            "host": {"name": host},
            "policy": {"name": "walker"},
            "device": {"device": "cpu", "threads": 1, "fused": fused},
        }, changes),
        cuda_available=False,
    )
    notices: list[str] = []

    class Notices:
        quiet = True

        def notice(self, text: str) -> None:
            notices.append(text)

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    registry = registry_from_plugins(TestPlugin(), builtins=True)
    runner = Runner.build(config, registry, run_dir=RunDir.create(tmp_path, fused), progress=Notices())
    runner.start()
    runner.run(rounds)
    runner.close()
    events = [e for e in read_jsonl(tmp_path / fused / "events.jsonl") if e["type"] not in {"run_start", "run_end"}]
    return runner, events, notices


def _floats_and_rest(value: Any, floats: list[float]) -> Any:
    """The value with every float replaced by a marker (collected into ``floats``)."""
    if isinstance(value, float):
        floats.append(value)
        return "<float>"
    if isinstance(value, dict):
        return {k: _floats_and_rest(v, floats) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_and_rest(v, floats) for v in value]
    return value


def _assert_same_events(plain: list[dict[str, Any]], fused: list[dict[str, Any]]) -> None:
    assert len(plain) == len(fused)
    worst = 0.0
    for a, b in zip(plain, fused):
        floats_a: list[float] = []
        floats_b: list[float] = []
        assert _floats_and_rest(a, floats_a) == _floats_and_rest(b, floats_b), (a, b)
        worst = max([worst, *(abs(x - y) for x, y in zip(floats_a, floats_b))])
    assert worst <= TOLERANCE, worst


@pytest.mark.slow
def test_a_fused_group_reproduces_its_envs_run_one_by_one(tmp_path) -> None:
    plain_runner, plain, _ = _run(tmp_path, "off")
    fused_runner, fused, notices = _run(tmp_path, "on")
    assert plain_runner.groups == [] and [g.fused for g in fused_runner.groups] == [True] and not notices
    reached = Counter(e["to_stage"] for e in plain if e["type"] == "seed_transition")
    for stage in ("GERMINATED", "TRAINING", "BLENDING", "HOLDING", "FOSSILIZED", "PRUNED"):
        assert reached[stage] > 0, (stage, reached)
    _assert_same_events(plain, fused)


@pytest.mark.slow
def test_a_fault_in_a_fused_group_rolls_its_env_back_as_it_would_alone(tmp_path) -> None:
    """A seed that turns the loss NaN once blended: the env's rollback (its host tensors are views of the
    wide host, its snapshot views of the group's copy) and its prune match the same envs run one by one,
    and the other envs' hosts are untouched by the NaN."""
    changes = {
        "policy": {"name": "heuristic", "options": BUSY_HEURISTIC},
        "actions": {"blueprints": ["nan_seed", "conv_light"]},
        "run": {"episode_length": 6},
    }
    _, plain, _ = _run(tmp_path, "off", rounds=1, **changes)
    fused_runner, fused, _ = _run(tmp_path, "on", rounds=1, **changes)
    assert [g.fused for g in fused_runner.groups] == [True]
    faults = [e for e in plain if e["type"] == "fault"]
    assert faults and {f["env"] for f in faults} != {0, 1, 2}, faults  # some envs never fault
    _assert_same_events(plain, fused)


@pytest.mark.parametrize("metric", list(METRICS))
def test_fused_counterfactuals_score_the_tasks_metric_as_the_plain_path_does(tmp_path, metric: str) -> None:
    """Rewards compare each seed's counterfactual with validation scores, so both must be the task metric's
    score. The fused pass once scored raw accuracy whatever the metric. Here the group's wide counterfactual
    pass and each env's own (``growth.counterfactual.contributions``) measure the same models."""
    # Clean images, four times the samples per epoch and seeds that are loud from the start: the hosts learn
    # within the episode and switching a seed off moves both accuracy and loss.
    # The scripted policy grows one seed per env and keeps it HOLDING, where counterfactuals are measured.
    plan = {"plan": ["r0c1:loud", "r0c2:loud", "none", "r0c2:loud"], "germinate_at": 0, "fossilize": False}
    changes = {"task": {"name": f"synthetic_{metric}", "options": {"difficulty": 0.0}}, "run": {"episode_length": 5},
               "training": {"epoch_samples": 256}, "actions": {"blueprints": ["loud"]},
               "policy": {"name": "scripted", "options": plan}}
    runner, _, _ = _run(tmp_path, "on", envs=4, rounds=1, **changes)
    (group,) = runner.groups
    assert group.fused
    fused: dict[int, dict[str, SlotContribution]] = {}
    for e, env in enumerate(group.envs):
        env.set_contributions = lambda measured, e=e: fused.__setitem__(e, dict(measured))
    group._measure_contributions()
    compared = 0
    for e, env in enumerate(group.envs):
        plain = contributions(
            env.model, env.data.val_x[: env.val_count], env.data.val_y[: env.val_count], env.normalise,
            env.config.training.eval_batch_size, metric=env.metric,
        )
        assert fused[e].keys() == plain.keys()
        for name, alone in plain.items():
            assert fused[e][name].acc_with == pytest.approx(alone.acc_with, abs=TOLERANCE), (e, name)
            assert fused[e][name].acc_without == pytest.approx(alone.acc_without, abs=TOLERANCE), (e, name)
            compared += 1
    assert compared == 3, "every growing env should end the episode with its seed measured"


def test_a_host_that_mixes_channels_is_not_fused_and_trains_as_before(tmp_path) -> None:
    plain_runner, plain, _ = _run(tmp_path, "off", host="mixing", envs=2, rounds=1)
    fused_runner, fused, notices = _run(tmp_path, "on", host="mixing", envs=2, rounds=1)
    assert [g.fused for g in fused_runner.groups] == [False]
    assert len(notices) == 1 and "'mixing' host cannot be fused" in notices[0] and "one after another" in notices[0]
    assert plain == fused  # the fallback is exactly the plain path
