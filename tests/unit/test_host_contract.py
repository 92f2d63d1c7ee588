"""The host contract check: built-in hosts pass; each kind of broken host is named precisely, all at once;
the core refuses a broken host when it builds a run or a model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esper_core.config import LifecycleConfig, TrainingConfig
from esper_core.host_contract import HostContractError, assert_host_contract, host_contract_problems
from esper_core.growth.model import MorphogeneticModel
from esper_core.records import SlotPoint, TaskInfo
from esper_core.run.setup import slot_layout
from esper_core.specs import HostSpec, NoOptions
from esper_hosts.resnet import IMPAIRED_SPEC, RESNET_SPEC
from esper_hosts.tiny_cnn import SPEC as TINY_SPEC

INFO = TaskInfo("t", in_channels=3, image_size=8, num_classes=5)


class TwoSlotHost(nn.Module):
    """A correct minimal host; the tests break one thing at a time."""

    topology = "cnn"

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.head = nn.Linear(channels, 5)
        self.slots = nn.ModuleDict({"a": nn.Identity(), "b": nn.Identity()})
        self.declared = (SlotPoint("a", channels, 8), SlotPoint("b", channels, 4))
        self.calls_b = 1

    def slot_points(self) -> tuple[SlotPoint, ...]:
        return self.declared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.slots["a"](self.stem(x))
        x = self.down(x)
        for _ in range(self.calls_b):
            x = self.slots["b"](x)
        return self.head(x.mean((2, 3)))


@pytest.mark.parametrize("spec", [RESNET_SPEC, IMPAIRED_SPEC, TINY_SPEC], ids=lambda s: s.name)
def test_builtin_hosts_fulfil_the_contract(spec: HostSpec) -> None:
    host = spec.factory(spec.options_type(), TaskInfo("cifar-like", 3, 32, 10))
    assert host_contract_problems(host, TaskInfo("cifar-like", 3, 32, 10)) == []


def test_a_correct_host_passes_and_stays_in_its_training_mode() -> None:
    host = TwoSlotHost().train()
    assert_host_contract(host, INFO)
    assert host.training


def _problems(**changes: object) -> list[str]:
    host = TwoSlotHost()
    for key, value in changes.items():
        if key in host._modules and not isinstance(value, nn.Module):
            delattr(host, key)  # nn.Module refuses a plain value over a registered submodule
        setattr(host, key, value)
    return host_contract_problems(host, INFO)


def test_structural_problems_are_each_named() -> None:
    assert _problems(topology="") == ["`topology` must be a non-empty str (e.g. 'cnn'); got ''"]
    assert "`slots` must be an nn.ModuleDict" in _problems(slots={"a": nn.Identity()})[0]
    missing = _problems(slots=nn.ModuleDict({"a": nn.Identity()}))
    assert missing == ["slot points ['b'] have no entry in `slots` (add nn.Identity() under each name)"]
    extra = _problems(slots=nn.ModuleDict({"a": nn.Identity(), "b": nn.Identity(), "c": nn.Identity()}))
    assert extra == ["`slots` entries ['c'] are not declared by `slot_points()`"]
    seeded = _problems(slots=nn.ModuleDict({"a": nn.Identity(), "b": nn.ReLU()}))
    assert seeded == ["`slots` entries ['b'] must start as nn.Identity (the core installs the seeds)"]
    assert _problems(declared=())[0].startswith("`slot_points()` returned no slot points")
    repeated = _problems(declared=(SlotPoint("a", 4, 8), SlotPoint("a", 4, 8)))
    assert "slot point names repeat: ['a', 'a']" in repeated
    assert "both must be positive ints" in _problems(declared=(SlotPoint("a", 4, 8), SlotPoint("b", 0, 4)))[0]


def test_several_problems_are_reported_together() -> None:
    problems = _problems(topology=None, slots=nn.ModuleDict({"a": nn.Identity(), "c": nn.Identity()}))
    assert len(problems) == 3, problems


def test_forward_problems_wrong_declared_shape_skipped_or_repeated_slot_and_bad_output() -> None:
    wrong = _problems(declared=(SlotPoint("a", 4, 8), SlotPoint("b", 4, 8)))
    assert wrong == ["slot 'b' declares [B, 4, 8, 8] but forward feeds it [2, 4, 4, 4]"]
    assert _problems(calls_b=0) == ["forward must pass features through slots['b'] exactly once; it did 0 time(s)"]
    assert _problems(calls_b=2) == ["forward must pass features through slots['b'] exactly once; it did 2 time(s)"]
    assert _problems(head=nn.Linear(4, 7)) == ["forward must return logits of shape (2, num_classes=5); got (2, 7)"]
    crashed = _problems(stem=nn.Conv2d(1, 4, 3, padding=1))
    assert len(crashed) == 1 and crashed[0].startswith("forward on a [2, 3, 8, 8] batch raised RuntimeError")


def test_the_error_names_the_host_and_lists_every_problem() -> None:
    host = TwoSlotHost()
    host.topology = ""
    host.slots = nn.ModuleDict({"a": nn.Identity()})
    with pytest.raises(HostContractError) as caught:
        assert_host_contract(host, INFO, name="my_host")
    message = str(caught.value)
    assert message.startswith("host 'my_host' breaks the host contract")
    assert "`topology`" in message and "['b']" in message and len(caught.value.problems) == 2


def test_run_setup_refuses_a_host_whose_forward_breaks_the_contract_without_touching_global_rng() -> None:
    def factory(options: NoOptions, info: TaskInfo) -> TwoSlotHost:
        host = TwoSlotHost()
        host.calls_b = 0
        return host

    spec = HostSpec(name="skips_b", description="test", factory=factory, topology="cnn")
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    with pytest.raises(HostContractError, match="(?s)host 'skips_b' .*slots\\['b'\\] exactly once"):
        slot_layout(spec, NoOptions(), INFO)
    assert torch.equal(torch.rand(3), expected)
    good = HostSpec(name="good", description="test", factory=lambda o, i: TwoSlotHost(), topology="cnn")
    assert slot_layout(good, NoOptions(), INFO) == (("a", "b"), "cnn")


def test_the_model_refuses_a_structurally_broken_host() -> None:
    host = TwoSlotHost()
    host.slots = nn.ModuleDict({"a": nn.Identity()})
    with pytest.raises(HostContractError, match="slot points \\['b'\\] have no entry"):
        MorphogeneticModel(host, {}, {}, LifecycleConfig(), TrainingConfig())
