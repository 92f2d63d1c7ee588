"""Run setup: task auto picks the best available task the host can read (or one that will download),
devices resolve."""

from __future__ import annotations

import attrs
import pytest
import torch

from esper_core.config import DeviceConfig, EsperConfig, HostConfig, TaskConfig
from esper_core.plugins import load_registry
from esper_core.run.setup import SetupError, resolve_basis, resolve_devices, resolve_task
from esper_core.specs import HostSpec, TaskSpec


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


# An image task that outranks a sequence task, as cifar10/synthetic outrank pysource among all tasks.
IMAGES = TaskSpec(name="images", description="", factory=lambda o: FakeTask(o, present=True), options_type=PlainOptions,
                  auto_priority=10, topologies=frozenset({"cnn"}))
TOKENS = TaskSpec(name="tokens", description="", factory=lambda o: FakeTask(o, present=True), options_type=PlainOptions,
                  auto_priority=0, topologies=frozenset({"transformer"}))
MISSING_TOKENS = TaskSpec(name="missing_tokens", description="", factory=lambda o: FakeTask(o, present=False),
                          options_type=PlainOptions, auto_priority=5, topologies=frozenset({"transformer"}))
NAMED_TOKENS = TaskSpec(name="named_tokens", description="", factory=lambda o: FakeTask(o, present=True),
                        options_type=PlainOptions, topologies=frozenset({"transformer"}))  # never auto


def test_task_feeds_cnn_hosts_unless_it_says_otherwise():
    assert SMALL.topologies == frozenset({"cnn"}) and SMALL.supports("cnn") and not SMALL.supports("transformer")
    assert TOKENS.supports("transformer") and not TOKENS.supports("cnn")


def test_auto_picks_the_best_task_the_host_can_read():
    registry = Registry(IMAGES, TOKENS)
    for_transformer = resolve_task(registry, TaskConfig(name="auto"), host_topology="transformer")
    assert for_transformer.spec.name == "tokens"
    assert for_transformer.notice == "task auto -> tokens; set task.name to choose"
    assert resolve_task(registry, TaskConfig(name="auto"), host_topology="cnn").spec.name == "images"
    assert resolve_task(registry, TaskConfig(name="auto")).spec.name == "images"  # host unknown: every task, as before


def test_auto_skips_an_unavailable_fitting_task_and_says_so():
    registry = Registry(IMAGES, MISSING_TOKENS, TOKENS)
    resolved = resolve_task(registry, TaskConfig(name="auto"), host_topology="transformer")
    assert resolved.spec.name == "tokens" and "missing_tokens" in resolved.notice and "images" not in resolved.notice


def test_auto_with_no_available_task_for_the_host_names_the_topology_and_the_fitting_tasks():
    with pytest.raises(SetupError) as raised:
        registry = Registry(IMAGES, MISSING_TOKENS, NAMED_TOKENS)
        resolve_task(registry, TaskConfig(name="auto"), host_topology="transformer")
    message = str(raised.value)
    assert "'transformer'" in message and "missing_tokens" in message and "named_tokens" in message
    assert "'images'" not in message and "task.name" in message
    with pytest.raises(SetupError, match="'graph'"):
        resolve_task(Registry(IMAGES, TOKENS), TaskConfig(name="auto"), host_topology="graph")


def test_a_named_task_is_returned_as_named_whatever_the_host():
    registry = Registry(IMAGES, TOKENS, NAMED_TOKENS)
    assert resolve_task(registry, TaskConfig(name="images"), host_topology="transformer").spec.name == "images"
    named = resolve_task(registry, TaskConfig(name="named_tokens"), host_topology="cnn")
    assert named.spec.name == "named_tokens" and named.notice is None


class HostRegistry(Registry):
    """Tasks and hosts by kind, as ``resolve_basis`` asks for them."""

    def __init__(self, tasks, hosts) -> None:
        self._kinds = {"task": {s.name: s for s in tasks}, "host": {s.name: s for s in hosts}}

    def specs(self, kind: str):
        return dict(self._kinds.get(kind, {}))

    def get(self, kind: str, name: str):
        return self._kinds[kind][name]


def _host(name: str, topology: str) -> HostSpec:
    return HostSpec(name=name, description="", factory=lambda o, i: None, topology=topology)


def test_a_run_resolves_auto_for_its_configured_host_and_records_the_task():
    registry = HostRegistry([IMAGES, TOKENS], [_host("cnn_host", "cnn"), _host("seq_host", "transformer")])
    notices = []
    for host, task in (("seq_host", "tokens"), ("cnn_host", "images")):
        config = EsperConfig(host=HostConfig(name=host), device=DeviceConfig(device="cpu"))
        basis = resolve_basis(config, registry, notice=notices.append)
        assert basis.task.spec.name == basis.config.task.name == task
    assert notices == ["task auto -> tokens; set task.name to choose", "task auto -> images; set task.name to choose"]


def test_the_builtin_tasks_declare_what_they_feed_and_auto_fits_the_host(tmp_path):
    registry = load_registry()
    feeds = {name: spec.topologies for name, spec in registry.specs("task").items()}
    assert feeds["synthetic"] == feeds["cifar10"] == feeds["npz"] == frozenset({"cnn"})
    assert feeds["pysource"] == feeds["text"] == frozenset({"transformer"})
    empty = TaskConfig(name="auto", data_dir=str(tmp_path))  # no CIFAR-10, no corpus: what is always there
    assert resolve_task(registry, empty, host_topology="transformer").spec.name == "pysource"
    for topology in ("cnn", None):
        assert resolve_task(registry, empty, host_topology=topology).spec.name == "synthetic"


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
