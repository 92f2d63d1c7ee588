"""assert_blueprint_contract: built-ins and the example pass; each way a blueprint can break germination is
reported, all at once; and its verdict agrees with germinating through the real MorphogeneticModel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from esper_core.api import (
    BlueprintContractError,
    BlueprintSpec,
    TaskInfo,
    assert_blueprint_contract,
    blueprint_contract_problems,
)
from esper_core.config import LifecycleConfig, TrainingConfig
from esper_core.growth.model import MorphogeneticModel
from esper_core.plugins import registry_from_plugins

REGISTRY = registry_from_plugins(builtins=True)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "esper-blueprint-demo" / "esper_blueprint_demo" / "conv_dilated.py"


def _spec(name: str, factory) -> BlueprintSpec:
    return BlueprintSpec(name=name, description="test", factory=factory)


def _zero_last(module: nn.Sequential) -> nn.Sequential:
    nn.init.zeros_(module[-1].weight)
    nn.init.zeros_(module[-1].bias)
    return module


def good(channels: int, spatial: int) -> nn.Module:
    return _zero_last(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 1)))


def not_zero(channels: int, spatial: int) -> nn.Module:
    return nn.Conv2d(channels, channels, 3, padding=1)


def every_layer_zero(channels: int, spatial: int) -> nn.Module:
    module = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 1))
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


def shrinks(channels: int, spatial: int) -> nn.Module:
    return _zero_last(nn.Sequential(nn.Conv2d(channels, channels, 3)))


def frozen(channels: int, spatial: int) -> nn.Module:
    module = _zero_last(nn.Sequential(nn.Conv2d(channels, channels, 1)))
    module.requires_grad_(False)
    return module


# The CNN ones against the stand-in host; the transformer ones in gpt: tests/properties/test_transformer_topology.py.
@pytest.mark.parametrize("name", [n for n in REGISTRY.names("blueprint") if REGISTRY.get("blueprint", n).supports("cnn")])
def test_every_builtin_blueprint_fulfils_the_contract(name: str) -> None:
    assert_blueprint_contract(REGISTRY.get("blueprint", name))


def test_the_example_plugins_blueprint_fulfils_the_contract() -> None:
    spec = importlib.util.spec_from_file_location("conv_dilated_under_test", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert_blueprint_contract(module.CONV_DILATED)


def test_a_good_blueprint_passes_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    assert blueprint_contract_problems(_spec("good", good)) == []
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (not_zero, "a fresh seed must output 0"),
        (not_zero, "the host's logits changed"),
        (every_layer_zero, "got no gradient in 2 optimiser steps"),
        (shrinks, "a seed must keep [B, C, H, W]"),
        (frozen, "no trainable parameters"),
        (lambda c, s: "not a module", "must return a torch.nn.Module"),
    ],
)
def test_each_way_to_break_germination_is_named(factory, message: str) -> None:
    problems = blueprint_contract_problems(_spec("bad", factory), sizes=[(8, 8)])
    assert any(message in p for p in problems), problems


def test_every_problem_is_listed_at_once_with_where_it_happened() -> None:
    with pytest.raises(BlueprintContractError) as info:
        assert_blueprint_contract(_spec("bad", not_zero), sizes=[(8, 8), (16, 4)])
    problems = info.value.problems
    assert sum(p.startswith("at channels=8, spatial=8") for p in problems) == 1
    assert sum(p.startswith("at channels=16, spatial=4") for p in problems) == 1
    assert any("germinated into slot 'stand_in'" in p for p in problems)
    assert "blueprint 'bad' breaks the blueprint contract" in str(info.value)


def test_it_germinates_into_a_real_host_when_given_one() -> None:
    host_spec = REGISTRY.get("host", "tiny_cnn")
    info = TaskInfo("t", in_channels=3, image_size=16, num_classes=4)
    host = host_spec.factory(host_spec.options_type(), info)
    assert blueprint_contract_problems(_spec("good", good), host=host, info=info) == []
    problems = blueprint_contract_problems(_spec("bad", not_zero), host=host, info=info)
    assert {p.split(":")[0] for p in problems if p.startswith("germinated")} == {
        f"germinated into slot {point.name!r} (at channels={point.channels}, spatial={point.spatial})"
        for point in host.slot_points()
    }


@pytest.mark.parametrize(("factory", "passes"), [(good, True), (not_zero, False)])
def test_the_verdict_agrees_with_germinating_through_the_real_model(factory, passes: bool) -> None:
    """The contract emulates germination without the growth room; here the real model germinates too."""
    spec = _spec("probe", factory)
    host_spec = REGISTRY.get("host", "tiny_cnn")
    info = TaskInfo("t", in_channels=3, image_size=16, num_classes=4)
    torch.manual_seed(0)
    model = MorphogeneticModel(
        host_spec.factory(host_spec.options_type(), info), {"probe": spec}, REGISTRY.specs("blend_style"),
        LifecycleConfig(min_training_epochs=0), TrainingConfig(),
    ).eval()  # fmt: skip
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        slot = model.slot_names[0]
        model.germinate(slot, "probe", "linear_add", 0, 1.0)
        model.advance(slot)
        model.step_epoch()
        after = model(x)
    unchanged = torch.allclose(after, before, rtol=0, atol=1e-6)
    assert unchanged == passes
    assert (blueprint_contract_problems(spec, sizes=[(8, 8)]) == []) == passes
