"""Built-in blueprints: shape preservation, a harmless start, trainability and sensible sizes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from esper_blueprints.attention import MAX_KEY_SIDE
from esper_blueprints.plugin import BUILTIN_BLUEPRINTS
from esper_core.protocols import Blueprint
from esper_core.specs import BlueprintSpec

# The CNN blueprints (the transformer ones: tests/properties/test_transformer_topology.py).
BLUEPRINTS = {spec.name: spec for spec in BUILTIN_BLUEPRINTS if spec.supports("cnn")}
NAMES = list(BLUEPRINTS)


def inputs(channels: int, size: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_catalogue_lists_the_builtin_blueprints_once_each_for_cnn_hosts() -> None:
    assert NAMES == ["conv_light", "conv_small", "conv_heavy", "bottleneck", "depthwise", "norm", "attention"]
    assert "noop" not in NAMES  # the action space adds it
    for spec in BLUEPRINTS.values():
        assert isinstance(spec, BlueprintSpec) and isinstance(spec, Blueprint)
        assert spec.topologies == frozenset({"cnn"})
        assert spec.supports("cnn") and not spec.supports("mlp")
        assert spec.description


@pytest.mark.parametrize("name", NAMES)
@given(channels=st.integers(1, 16), size=st.integers(1, 12), batch=st.integers(1, 3))
def test_shape_is_preserved(name: str, channels: int, size: int, batch: int) -> None:
    assume(channels > 1 or size > 1)  # a single feature per sample cannot be group-normalised
    x = inputs(channels, size, batch)
    out = BLUEPRINTS[name].build(channels, size)(x)
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("channels", "size"), [(8, 32), (16, 16), (32, 8), (64, 4)])
def test_fresh_seed_outputs_zero(name: str, channels: int, size: int) -> None:
    seed = BLUEPRINTS[name].build(channels, size)
    for mode in (True, False):
        seed.train(mode)
        assert seed(inputs(channels, size) * 10).abs().max() < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_one_gradient_step_moves_the_output_and_then_every_parameter_learns(name: str) -> None:
    channels, size = 8, 6
    torch.manual_seed(0)
    seed = BLUEPRINTS[name].build(channels, size)
    x = inputs(channels, size, batch=4)
    target = inputs(channels, size, batch=4, seed=1)
    optimiser = torch.optim.SGD(seed.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in seed.named_parameters()}
    for _ in range(3):
        optimiser.zero_grad()
        torch.nn.functional.mse_loss(seed(x), target).backward()
        optimiser.step()
    assert seed(x).abs().max() > 1e-4
    unchanged = [n for n, p in seed.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []  # zero-init only on the last layer, so the gradient reaches every layer


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_input_gives_the_same_result(name: str) -> None:
    torch.manual_seed(0)
    seed = BLUEPRINTS[name].build(8, 6)
    with torch.no_grad():
        for parameter in seed.parameters():
            parameter.normal_(std=0.2)  # a trained-looking seed, so the comparison is not 0 == 0
    x = inputs(8, 6)
    reference = seed(x)
    seed = seed.to(memory_format=torch.channels_last)
    out = seed(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
    assert reference.abs().max() > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_forward_and_backward(name: str) -> None:
    seed = BLUEPRINTS[name].build(8, 6)
    x = inputs(8, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = seed(x)
    assert out.shape == x.shape
    out.float().sum().backward()
    assert all(p.grad is not None for p in seed.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_the_module(name: str) -> None:
    spec = BLUEPRINTS[name]
    assert spec.param_count(16, 8) == sum(p.numel() for p in spec.build(16, 8).parameters())


@pytest.mark.parametrize("channels", [16, 32, 64])
def test_param_counts_span_a_useful_range_in_a_sensible_order(channels: int) -> None:
    count = {name: spec.param_count(channels, 8) for name, spec in BLUEPRINTS.items()}
    assert count["norm"] < count["bottleneck"] < count["conv_light"] < count["conv_small"] < count["conv_heavy"]
    assert count["depthwise"] < count["conv_light"]
    assert count["attention"] < count["conv_small"]
    assert count["conv_heavy"] > 8 * count["conv_light"]
    assert count["norm"] == 2 * channels


@pytest.mark.parametrize("name", NAMES)
def test_param_count_grows_with_width(name: str) -> None:
    counts = [BLUEPRINTS[name].param_count(c, 8) for c in (8, 16, 32)]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_attention_pools_keys_on_large_maps_and_still_attends_globally() -> None:
    size = MAX_KEY_SIDE * 2 + 3
    seed = BLUEPRINTS["attention"].build(8, size)
    with torch.no_grad():
        seed.out.weight.normal_()
    x = inputs(8, size, batch=1)
    probe = x.clone()
    probe[..., -1, -1] += 5.0  # a change in one corner ...
    delta = (seed(probe) - seed(x)).abs().sum(dim=1)[0]
    assert delta[0, 0] > 0  # ... reaches the opposite corner (no conv seed of this size could)
    assert seed(x).shape == x.shape
