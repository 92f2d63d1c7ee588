"""A TRAINING seed learns a bounded output (regression: without the proximal pull it grew without bound).

The isolated seed sees the loss linearised at the host features, which has no minimum: followed alone its
output grew ~600x past the host features within one epoch and blew up the loss once blended (12 faults in
a 5-minute GPU study). The pull gives it the bounded target ``s* = -numel(s) * g / proximal``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from esper_core.records import SlotPoint
from esper_core.growth.slot import SeedSlot, isolated_seed_output
from esper_core.stages import SeedStage


def test_seed_gradient_is_task_gradient_plus_scaled_pull_and_host_gradient_is_untouched() -> None:
    h = torch.randn(4, 3, 2, 2, requires_grad=True)
    s = torch.randn(4, 3, 2, 2, requires_grad=True)
    g = torch.randn(4, 3, 2, 2)
    out = isolated_seed_output(h, s, proximal=2.0)
    assert torch.equal(out, h)
    out.backward(g)
    assert torch.equal(h.grad, g)
    torch.testing.assert_close(s.grad, g + (2.0 / s.numel()) * s.detach())


@given(proximal=st.floats(0.5, 50.0), scale=st.floats(0.01, 10.0))
def test_descent_on_the_seed_output_converges_to_the_proximal_target(proximal: float, scale: float) -> None:
    torch.manual_seed(0)
    g = scale * torch.randn(2, 3, 2, 2) / 24
    s = torch.zeros_like(g, requires_grad=True)
    h = torch.zeros_like(g)
    lr = 0.5 * s.numel() / proximal  # stable step for the pull's curvature
    for _ in range(200):
        s.grad = None
        isolated_seed_output(h, s, proximal).backward(g)
        with torch.no_grad():
            s -= lr * s.grad
    torch.testing.assert_close(s.detach(), -s.numel() * g / proximal, rtol=1e-3, atol=1e-6)


def test_without_the_pull_the_same_descent_never_settles() -> None:
    g = torch.full((1, 1, 2, 2), 0.1)
    s = torch.zeros_like(g, requires_grad=True)
    for _ in range(100):
        s.grad = None
        isolated_seed_output(torch.zeros_like(g), s, 0.0).backward(g)
        with torch.no_grad():
            s -= 1.0 * s.grad
    assert s.detach().abs().min() >= 9.99  # linear drift: 100 steps x 0.1, and it would go on


def _train_seed(proximal: float, steps: int) -> float:
    torch.manual_seed(0)
    point = SlotPoint("r0c0", channels=4, spatial=8)
    slot = SeedSlot(point, proximal=proximal)
    seed = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    nn.init.zeros_(seed[-1].weight)
    nn.init.zeros_(seed[-1].bias)
    slot.seed, slot.stage = seed, SeedStage.TRAINING
    head = nn.Linear(4, 3)
    optimiser = torch.optim.SGD(seed.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(32, 4, 8, 8)
    y = torch.randint(0, 3, (32,))
    for _ in range(steps):
        optimiser.zero_grad()
        out = slot(x)
        nn.functional.cross_entropy(head(out.mean((2, 3))), y).backward()
        optimiser.step()
    with torch.no_grad():
        return float(seed(x).abs().mean() / x.abs().mean())


def test_a_training_seed_stays_bounded_with_the_pull_and_drifts_without_it() -> None:
    assert _train_seed(proximal=3.0, steps=300) < 1.0
    assert _train_seed(proximal=0.0, steps=300) > 10 * _train_seed(proximal=3.0, steps=300)


def test_negative_proximal_is_refused() -> None:
    with pytest.raises(ValueError, match="proximal"):
        isolated_seed_output(torch.zeros(1), torch.zeros(1), -1.0)
