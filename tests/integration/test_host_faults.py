"""A host that cannot train (every step a non-finite loss, rolled back each time) stops the run with a
clear error instead of letting it "complete" having learned nothing (issue 13); a seed that faults once is
still rolled back and pruned while the run goes on (tests/integration/test_run_faults.py)."""

from __future__ import annotations

import attrs
import pytest
import torch

from esper_core.config import (
    ActionsConfig, DeviceConfig, EsperConfig, HostConfig, LifecycleConfig, PolicyConfig, RewardConfig, RunConfig,
    TaskConfig, TrainingConfig,
)
from esper_core.run.faults import HostFaultError
from esper_core.run.runner import Runner
from esper_core.cli.errors import describe_failure
from support.run_fakes import HOST, POLICIES, RunnerRegistry, ToyHost


class NanHost(ToyHost):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


def _runner(episode_length: int) -> Runner:
    registry = RunnerRegistry(POLICIES)
    registry._specs["host"] = {"toy": attrs.evolve(HOST, factory=NanHost)}
    config = EsperConfig(
        run=RunConfig(envs=1, episode_length=episode_length, rounds=3, seed=0),
        task=TaskConfig(name="toy"), host=HostConfig(name="toy"), policy=PolicyConfig(name="random"),
        reward=RewardConfig(name="acc"),
        training=TrainingConfig(batch_size=32, epoch_samples=32, eval_batch_size=64),
        lifecycle=LifecycleConfig(min_training_epochs=1, min_prune_age=1, embargo_epochs=1, resetting_epochs=1),
        actions=ActionsConfig(tempos=(1,), alpha_targets=(1.0,), blueprints=("conv",)),
        device=DeviceConfig(device="cpu"),
    )
    return Runner.build(config, registry)


@pytest.mark.parametrize("episode_length", [2, 4])
def test_a_host_faulting_on_every_step_stops_the_run_with_the_reason(episode_length):
    runner = _runner(episode_length)
    runner.start()
    with pytest.raises(HostFaultError) as error:
        runner.run(3)
    message, code = describe_failure(error.value)
    assert code == 1 and "host 'toy' hit a non-finite loss on" in message and "training.lr" in message
    # It stops within the round where the streak reaches max(3, episode_length) steps, not at the end.
    assert runner.round == (max(3, episode_length) - 1) // episode_length
