"""Counterfactual contributions: one fused pass per slot equals measuring with and without the seed apart."""

from __future__ import annotations

import pytest
import torch

from esper_core.growth.alpha import AlphaSchedule
from esper_core.growth.counterfactual import SlotContribution, contributions, measured_slots
from esper_core.stages import SeedStage as S
from support.lifecycle_strategies import CLASSES, IMAGE, batch, make_model, train_step


def images(n: int = 37, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, IMAGE, IMAGE), dtype=torch.uint8, generator=generator)
    return x, torch.randint(0, CLASSES, (n,), generator=generator)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x.float() - 127.5) / 64.0


def blended_model():
    """``early`` HOLDING at alpha 1 with a strong seed; ``late`` BLENDING at alpha 0.5."""
    model = make_model()
    x, y = batch()
    model.germinate("early", "conv", "add", 0, 1.0)
    train_step(model, x, y)
    model.step_epoch()
    model.advance("early")
    model.advance("early")
    model.germinate("late", "norm_conv", "gated", 2, 1.0)
    train_step(model, x, y)
    model.step_epoch()
    model.advance("late")
    train_step(model, x, y)
    model.step_epoch()
    with torch.no_grad():  # make the seeds matter so with/without differ
        for p in model.slots["early"].seed.parameters():
            p.mul_(8.0)
        model.host.head.weight.mul_(20.0)
    return model


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(normalise(x)).argmax(1) == y).sum().item() / len(y)


def brute_force(model, name, x, y) -> SlotContribution:
    slot = model.slots[name]
    model.eval()
    acc_with = accuracy(model, x, y)
    saved = slot.alpha.clone()
    slot.alpha.zero_()
    acc_without = accuracy(model, x, y)
    slot.alpha.copy_(saved)
    return SlotContribution(acc_with, acc_without)


def test_matches_separate_with_and_without_passes() -> None:
    model = blended_model()
    x, _ = images()
    model.eval()
    with torch.no_grad():
        y = model(normalise(x)).argmax(1)  # labels the blended model gets right: acc_with is 1
    model.train()
    result = contributions(model, x, y, normalise, batch_size=10)
    assert set(result) == {"early", "late"}
    assert model.slots["late"].stage == S.BLENDING and model.slots["early"].stage == S.HOLDING
    for name in result:
        expected = brute_force(model, name, x, y)
        assert result[name].acc_with == pytest.approx(expected.acc_with, abs=1e-12)
        assert result[name].acc_without == pytest.approx(expected.acc_without, abs=1e-12)
    assert result["early"].acc_with == 1.0 > result["early"].acc_without  # the measurement has teeth
    assert result["early"].contribution == result["early"].acc_with - result["early"].acc_without


def test_restores_mode_and_leaves_no_gradients_or_statistics_behind() -> None:
    model = blended_model()
    model.optimizer.zero_grad()
    running = model.host.stem[1].running_mean.clone()
    x, y = images()
    model.train()
    contributions(model, x, y, normalise, batch_size=16)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(running, model.host.stem[1].running_mean)
    assert all(p.grad is None for p in model.parameters())
    assert all(slot._alpha_override is None for slot in model.slots.values())
    model.eval()
    contributions(model, x, y, normalise, batch_size=16)
    assert not model.training


def test_only_blended_seeds_are_measured() -> None:
    model = make_model()
    x, y = images(8)
    assert contributions(model, x, y, normalise, batch_size=4) == {}
    model.germinate("early", "conv", "add", 3, 1.0)
    assert measured_slots(model) == []  # TRAINING: alpha 0
    model.step_epoch()
    model.advance("early")
    assert measured_slots(model) == []  # BLENDING but alpha still 0
    model.step_epoch()
    assert measured_slots(model) == ["early"]


def test_fossilized_seeds_only_on_request() -> None:
    model = blended_model()
    model.fossilize("early")
    x, y = images(12)
    assert set(contributions(model, x, y, normalise, batch_size=5)) == {"late"}
    both = contributions(model, x, y, normalise, batch_size=5, stages=frozenset({S.FOSSILIZED, S.BLENDING}))
    assert set(both) == {"early", "late"}


def test_bad_arguments() -> None:
    model = blended_model()
    x, y = images(4)
    with pytest.raises(ValueError, match="batch_size"):
        contributions(model, x, y, normalise, batch_size=0)
    with pytest.raises(ValueError, match="labels"):
        contributions(model, x, y[:2], normalise, batch_size=2)


def test_pruned_fading_seed_is_not_measured_by_default() -> None:
    model = blended_model()
    model.slots["late"].set_schedule(AlphaSchedule.constant(0.5))
    model.prune("late", "slow", "linear")
    assert "late" not in measured_slots(model)
