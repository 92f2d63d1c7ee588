"""Built-in hosts: output shapes, slot points that match the real features, options, CPU autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esper_core.config.loading import ConfigError, structure_options
from esper_core.host_contract import assert_host_contract
from esper_core.protocols import Host
from esper_core.records import SlotPoint, TaskInfo
from esper_core.plugins import load_registry
from esper_core.specs import HostSpec
from esper_hosts.blocks import BasicBlock
from esper_hosts.resnet import IMPAIRED_SPEC, RESNET_SPEC, ImpairedResNetOptions, ResNetOptions
from esper_hosts.tiny_cnn import SPEC as TINY_SPEC
from esper_hosts.tiny_cnn import TinyCNNOptions

SPECS = {spec.name: spec for spec in (RESNET_SPEC, IMPAIRED_SPEC, TINY_SPEC)}
CIFAR = TaskInfo("cifar-like", in_channels=3, image_size=32, num_classes=10)


def build(name: str, info: TaskInfo = CIFAR, **options: object) -> nn.Module:
    spec: HostSpec = SPECS[name]
    return spec.factory(spec.options_type(**options), info)


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def features_at_slots(host: nn.Module, x: torch.Tensor) -> dict[str, torch.Size]:
    """Record what each slot module actually receives, through forward hooks."""
    seen: dict[str, torch.Size] = {}
    handles = [
        module.register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, args[0].shape))
        for name, module in host.slots.items()
    ]
    try:
        host(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("name", list(SPECS))
def test_host_fulfils_the_contract(name: str) -> None:
    host = build(name)
    # Not isinstance(host, Host): from Python 3.12 runtime protocols look members up statically and miss
    # nn.Module's submodules (``slots``). The contract check covers the members and the forward pass.
    assert set(Host.__annotations__) == {"topology", "slots"}  # the members the check knows about
    assert_host_contract(host, CIFAR, name=name)
    assert host.topology == SPECS[name].topology == "cnn"
    assert isinstance(host.slots, nn.ModuleDict)
    assert all(isinstance(module, nn.Identity) for module in host.slots.values())
    points = host.slot_points()
    assert all(isinstance(p, SlotPoint) for p in points)
    assert [p.name for p in points] == list(host.slots)
    assert len(points) >= 2


def test_slot_names() -> None:
    assert list(build("resnet").slots) == ["r0c0", "r0c1", "r0c2"]
    assert list(build("resnet_impaired").slots) == ["r0c0", "r0c1", "r0c2"]
    assert list(build("tiny_cnn").slots) == ["r0c0", "r0c1"]


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize(
    "info",
    [CIFAR, TaskInfo("mnist-like", 1, 28, 10), TaskInfo("odd", 3, 15, 4), TaskInfo("small", 2, 5, 3)],
    ids=lambda info: info.name,
)
def test_output_shape_and_slot_points_match_the_real_features(name: str, info: TaskInfo) -> None:
    host = build(name, info).eval()
    x = torch.randn(2, info.in_channels, info.image_size, info.image_size)
    assert host(x).shape == (2, info.num_classes)
    seen = features_at_slots(host, x)
    expected = {p.name: (2, p.channels, p.spatial, p.spatial) for p in host.slot_points()}
    assert {k: tuple(v) for k, v in seen.items()} == expected


def test_resnet_stage_resolutions_follow_strides_1_2_2() -> None:
    assert [(p.channels, p.spatial) for p in build("resnet").slot_points()] == [(16, 32), (32, 16), (64, 8)]
    assert [(p.channels, p.spatial) for p in build("resnet_impaired").slot_points()] == [(8, 32), (16, 16), (32, 8)]
    assert [(p.channels, p.spatial) for p in build("tiny_cnn").slot_points()] == [(8, 32), (16, 16)]


@pytest.mark.parametrize("name", ["resnet", "resnet_impaired"])
def test_widths_and_blocks_options_are_respected(name: str) -> None:
    host = build(name, widths=(4, 6, 10), blocks=(1, 3, 2))
    assert [p.channels for p in host.slot_points()] == [4, 6, 10]
    assert [sum(isinstance(m, BasicBlock) for m in stage.modules()) for stage in host.stages] == [1, 3, 2]
    assert host.head.in_features == 10
    assert build(name, widths=(4, 6, 10), blocks=(1, 1, 1)).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_tiny_cnn_widths_option() -> None:
    host = build("tiny_cnn", widths=(3, 5))
    assert [p.channels for p in host.slot_points()] == [3, 5]


def test_default_options() -> None:
    assert ResNetOptions() == ResNetOptions(widths=(16, 32, 64), blocks=(2, 2, 2))
    assert ImpairedResNetOptions() == ImpairedResNetOptions(widths=(8, 16, 32), blocks=(1, 1, 1))
    assert TinyCNNOptions().widths == (8, 16)


def test_sizes_impaired_is_much_smaller_and_tiny_is_a_few_thousand() -> None:
    resnet, impaired, tiny = params(build("resnet")), params(build("resnet_impaired")), params(build("tiny_cnn"))
    assert impaired * 4 < resnet
    assert tiny < 5_000 < impaired
    impaired_widths = [p.channels for p in build("resnet_impaired").slot_points()]
    assert all(a < b for a, b in zip(impaired_widths, [p.channels for p in build("resnet").slot_points()]))


class Constant(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)


@pytest.mark.parametrize("name", list(SPECS))
def test_forward_uses_what_every_slot_returns(name: str) -> None:
    host = build(name).eval()
    x = torch.randn(2, 3, 32, 32)
    reference = host(x)
    for slot in list(host.slots):
        host.slots[slot] = Constant()
        assert not torch.allclose(host(x), reference), slot
        host.slots[slot] = nn.Identity()
    torch.testing.assert_close(host(x), reference)


@pytest.mark.parametrize("name", ["resnet", "tiny_cnn"])
def test_options_come_from_config_tables_and_bad_values_are_named(name: str) -> None:
    spec = SPECS[name]
    widths = [4, 6, 8][: len(spec.options_type().widths)]
    options = structure_options(spec, {"widths": widths}, "host.options")
    assert options.widths == tuple(widths)
    with pytest.raises(ConfigError, match="widths"):
        structure_options(spec, {"widths": [4, 0, 8][: len(widths)]}, "host.options")
    with pytest.raises(ConfigError, match="depth"):
        structure_options(spec, {"depth": 3}, "host.options")


@pytest.mark.parametrize(
    ("options", "match"),
    [({"widths": (16, 32)}, "'widths' must be 3 integers from 1 to 4096"), ({"blocks": (1, 0, 1)}, "'blocks' must be 3")],
)
def test_bad_options_raise_a_clear_error(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ResNetOptions(**options)


def test_bad_task_info_is_named() -> None:
    with pytest.raises(ValueError, match="resnet host needs in_channels"):
        build("resnet", TaskInfo("broken", 0, 32, 10))


@pytest.mark.parametrize("name", list(SPECS))
def test_channels_last_and_bf16_autocast_on_cpu(name: str) -> None:
    host = build(name).eval()
    x = torch.randn(2, 3, 32, 32)
    reference = host(x)
    host = host.to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(host(x_last), reference, rtol=1e-4, atol=1e-4)
    host.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = host(x_last)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.float().sum().backward()
    assert all(p.grad is not None for p in host.parameters() if p.requires_grad)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(SPECS))
def test_channels_last_and_bf16_autocast_on_cuda(name: str) -> None:
    host = build(name).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = host(x)
    assert logits.dtype == torch.bfloat16 and logits.shape == (8, 10)
    logits.float().sum().backward()
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        ("resnet", {"widths": [16, 32, 1_000_000]}, "from 1 to 4096"),
        ("resnet_impaired", {"blocks": [1, 1, 500]}, "from 1 to 64"),
        ("tiny_cnn", {"widths": [8, 10**9]}, "from 1 to 4096"),
    ],
)
def test_sizes_that_cannot_be_right_are_refused_before_anything_is_allocated(name: str, options: dict, fragment: str) -> None:
    """A typo'd width must be a config error naming the option, not a multi-terabyte allocation."""
    spec = load_registry().get("host", name)
    with pytest.raises(ConfigError) as caught:
        structure_options(spec, options, "host.options", source="run.toml")
    (problem,) = caught.value.problems
    assert problem.key_path.startswith("host.options") and fragment in problem.message
