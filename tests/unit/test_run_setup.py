"""Run setup: task auto picks the best available task (or one that will download), devices resolve."""

from __future__ import annotations

import attrs
import pytest
import torch

from esper_core.config import DeviceConfig, TaskConfig
from esper_core.run.setup import SetupError, resolve_devices, resolve_task
from esper_core.specs import TaskSpec


@attrs.frozen
class FetchOptions:
    download: bool = False
    size: int = 1


@attrs.frozen
class PlainOptions:
    size: int = 1


class FakeTask:
    def __init__(self, options, present: bool) -> None:
        self.options, self.present = options, present

    def available(self, data_dir) -> bool:
        return self.present

    def load(self, data_dir, device, seed):  # pragma: no cover - not loaded here
        raise AssertionError


class Registry:
    def __init__(self, *specs: TaskSpec) -> None:
        self._specs = {s.name: s for s in specs}

    def specs(self, kind: str):
        return dict(self._specs)

    def get(self, kind: str, name: str):
        return self._specs[name]


BIG = TaskSpec(name="big", description="", factory=lambda o: FakeTask(o, present=False), options_type=FetchOptions, auto_priority=10)
SMALL = TaskSpec(name="small", description="", factory=lambda o: FakeTask(o, present=True), options_type=PlainOptions, auto_priority=0)
NEVER = TaskSpec(name="never", description="", factory=lambda o: FakeTask(o, present=True), options_type=PlainOptions)


def test_auto_picks_the_highest_priority_available_task_with_a_notice():
    resolved = resolve_task(Registry(NEVER, SMALL, BIG), TaskConfig(name="auto", options={"size": 3}))
    assert resolved.spec.name == "small" and resolved.task.options == PlainOptions(size=3)
    assert "task auto -> small" in resolved.notice and "big" in resolved.notice


def test_download_lets_auto_pick_a_missing_task_that_can_fetch_its_data():
    resolved = resolve_task(Registry(SMALL, BIG), TaskConfig(name="auto", download=True))
    assert resolved.spec.name == "big" and resolved.task.options.download is True
    assert "will download" in resolved.notice


def test_download_is_passed_only_to_tasks_that_take_it():
    assert resolve_task(Registry(SMALL), TaskConfig(name="small", download=True)).task.options == PlainOptions()
    assert resolve_task(Registry(BIG), TaskConfig(name="big", download=True)).task.options.download is True


def test_auto_without_any_available_task_is_a_clear_error():
    with pytest.raises(SetupError, match="no available task"):
        resolve_task(Registry(BIG, NEVER), TaskConfig(name="auto"))


def test_devices_resolve_and_unknown_cuda_is_refused_clearly():
    assert [str(d) for d in resolve_devices(DeviceConfig(device="cpu"))] == ["cpu"]
    assert [str(d) for d in resolve_devices(DeviceConfig(devices=("cpu", "cpu")))] == ["cpu", "cpu"]
    if not __import__("torch").cuda.is_available():
        with pytest.raises(SetupError, match="CUDA is not available"):
            resolve_devices(DeviceConfig(device="cuda"))


def test_hosts_that_cannot_fit_are_refused_with_what_was_asked_and_what_the_machine_has(monkeypatch):
    """A lower bound (weights, gradients, momentum, snapshot): refused before any env builds a host."""
    from torch import nn

    from esper_core.config import EsperConfig, RunConfig
    from esper_core.run import setup

    host = nn.Linear(1000, 1000)  # 1,001,000 parameters -> about 20 MB per env at 20 bytes each
    config = EsperConfig(run=RunConfig(envs=8))
    monkeypatch.setattr(setup, "free_memory", lambda device: 100 * 2**20)  # 100 MiB free
    with pytest.raises(SetupError) as caught:
        setup.check_memory(host, "wide", config, (torch.device("cpu"),))
    message = str(caught.value)
    assert "8 env(s) of host 'wide' (1,001,000 parameters each)" in message and "0.1 GiB free" in message
    assert "run.envs" in message
    setup.check_memory(host, "wide", EsperConfig(run=RunConfig(envs=4)), (torch.device("cpu"),))  # 80 MB fits
    monkeypatch.setattr(setup, "free_memory", lambda device: None)  # unknown: never refuses
    setup.check_memory(host, "wide", config, (torch.device("cpu"),))
