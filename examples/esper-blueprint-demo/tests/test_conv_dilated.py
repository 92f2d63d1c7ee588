"""The plugin's own tests, using the fixtures that installing esper provides (no import needed)."""

import torch

import esper_blueprint_demo.plugin
from esper_blueprint_demo.conv_dilated import CONV_DILATED


def test_registered_next_to_the_builtins(esper_registry_factory):
    registry = esper_registry_factory(esper_blueprint_demo.plugin)
    assert registry.get("blueprint", "conv_dilated") is CONV_DILATED
    assert "conv_light" in registry.names("blueprint")  # the built-ins are there too


def test_keeps_the_shape_and_starts_at_zero():
    for channels, spatial in [(16, 32), (32, 16), (64, 8), (8, 4)]:
        x = torch.randn(2, channels, spatial, spatial)
        out = CONV_DILATED.build(channels, spatial)(x)
        assert out.shape == x.shape
        assert out.abs().max() == 0


def test_learns_from_the_first_step():
    seed = CONV_DILATED.build(8, 16)
    x, target = torch.randn(4, 8, 16, 16), torch.randn(4, 8, 16, 16)
    optimiser = torch.optim.SGD(seed.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(seed(x), target).backward()
    optimiser.step()
    assert seed(x).abs().max() > 0
