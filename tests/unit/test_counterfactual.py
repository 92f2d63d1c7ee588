"""Counterfactual contributions: one fused pass per slot equals measuring with and without the seed apart.

Every test runs once per topology (``support.topologies``): the tiny CNN on uint8 images, and the tiny gpt
on uint8 byte windows, where accuracy counts every position's next-byte target and a task may judge by a
metric from the loss (bits per byte)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from esper_core.growth.alpha import AlphaSchedule
from esper_core.growth.counterfactual import SlotContribution, contributions, measured_slots
from esper_core.growth.model import MorphogeneticModel
from esper_core.records import ACCURACY, TaskMetric
from esper_core.stages import SeedStage as S
from support.lifecycle_strategies import train_step
from support.topologies import Topology, by_topology

#: A metric computed from the loss, like a byte task's bits per byte.
FROM_LOSS = TaskMetric(name="bits_per_byte", from_loss=True, scale=1.0 / math.log(2.0), worst=8.0, best=0.0)


def blended_model(topology: Topology) -> MorphogeneticModel:
    """The first slot HOLDING at alpha 1 with a strong random seed; the second BLENDING at alpha 0.5 with
    the normalising seed and the topology's last style."""
    model = topology.model()
    first, second = topology.slots
    x, y = topology.batch()
    model.germinate(first, topology.random_blueprint, topology.additive_style, 0, 1.0)
    train_step(model, x, y)
    model.step_epoch()
    model.advance(first)
    model.advance(first)
    model.germinate(second, topology.normalising_blueprint, tuple(topology.styles)[-1], 2, 1.0)
    train_step(model, x, y)
    model.step_epoch()
    model.advance(second)
    train_step(model, x, y)
    model.step_epoch()
    with torch.no_grad():  # make the seeds matter so with/without differ
        for p in model.slots[first].seed.parameters():
            p.mul_(8.0)
        last_matrix = [p for p in model.host.parameters() if p.dim() == 2][-1]  # CNN: the head
        last_matrix.mul_(20.0)
    return model


def measured(model, topology: Topology, x, y, metric: TaskMetric) -> float:
    """The metric's score of ``model`` on ``x``, ``y``, computed plainly (no fused pass)."""
    with torch.no_grad():
        logits = model(topology.prepare(x))
    accuracy = (logits.argmax(1) == y).sum().item() / y.numel()
    loss = F.cross_entropy(logits.float(), y).item()
    return metric.score(metric.value(loss, accuracy))


def brute_force(model, topology: Topology, name, x, y, metric: TaskMetric = ACCURACY) -> SlotContribution:
    slot = model.slots[name]
    model.eval()
    with_seed = measured(model, topology, x, y, metric)
    saved = slot.alpha.clone()
    slot.alpha.zero_()
    without = measured(model, topology, x, y, metric)
    slot.alpha.copy_(saved)
    return SlotContribution(with_seed, without)


def running_statistics(model) -> list[torch.Tensor]:
    return [buffer.clone() for name, buffer in model.named_buffers() if "running" in name]


@by_topology
def test_matches_separate_with_and_without_passes(topology: Topology) -> None:
    model = blended_model(topology)
    first, second = topology.slots
    x, _ = topology.raw_batch()
    model.eval()
    with torch.no_grad():
        y = model(topology.prepare(x)).argmax(1)  # labels the blended model gets right: acc_with is 1
    model.train()
    result = contributions(model, x, y, topology.prepare, batch_size=10)
    assert set(result) == {first, second}
    assert model.slots[second].stage == S.BLENDING and model.slots[first].stage == S.HOLDING
    for name in result:
        expected = brute_force(model, topology, name, x, y)
        assert result[name].acc_with == pytest.approx(expected.acc_with, abs=1e-12)
        assert result[name].acc_without == pytest.approx(expected.acc_without, abs=1e-12)
    assert result[first].acc_with == 1.0 > result[first].acc_without  # the measurement has teeth
    assert result[first].contribution == result[first].acc_with - result[first].acc_without


@by_topology
def test_a_metric_from_the_loss_matches_separate_passes(topology: Topology) -> None:
    model = blended_model(topology)
    x, y = topology.raw_batch()
    model.train()
    result = contributions(model, x, y, topology.prepare, batch_size=10, metric=FROM_LOSS)
    for name in topology.slots:
        expected = brute_force(model, topology, name, x, y, FROM_LOSS)
        assert result[name].acc_with == pytest.approx(expected.acc_with, abs=1e-6)  # float32 loss sums
        assert result[name].acc_without == pytest.approx(expected.acc_without, abs=1e-6)
    first = topology.slots[0]
    assert abs(result[first].contribution) > 1e-4  # the measurement has teeth (100x the tolerance)


#: Accuracy judged above chance (10 classes): a score that is not the accuracy itself.
ABOVE_CHANCE = TaskMetric(name="accuracy above chance", worst=0.1, best=1.0)


@by_topology
def test_an_accuracy_metric_with_its_own_range_is_scored_not_reported_raw(topology: Topology) -> None:
    """The score is what validation reports and rewards compare with; this path once returned raw accuracy
    for every metric not read off the loss."""
    model = blended_model(topology)
    x, y = topology.batch()  # the batch the seed was trained on: it helps there (see blended_model)
    raw = contributions(model, x, y, topology.prepare, batch_size=10)
    scored = contributions(model, x, y, topology.prepare, batch_size=10, metric=ABOVE_CHANCE)
    for name in topology.slots:
        assert scored[name].acc_with == pytest.approx(ABOVE_CHANCE.score(raw[name].acc_with), abs=1e-12)
        assert scored[name].acc_without == pytest.approx(ABOVE_CHANCE.score(raw[name].acc_without), abs=1e-12)
    first = topology.slots[0]
    assert scored[first].contribution == pytest.approx(raw[first].contribution / 0.9, abs=1e-12) != raw[first].contribution


@by_topology
def test_restores_mode_and_leaves_no_gradients_or_statistics_behind(topology: Topology) -> None:
    model = blended_model(topology)
    model.optimizer.zero_grad()
    running = running_statistics(model)
    x, y = topology.raw_batch()
    model.train()
    contributions(model, x, y, topology.prepare, batch_size=16)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before, after) for before, after in zip(running, running_statistics(model)))
    assert all(p.grad is None for p in model.parameters())
    assert all(slot._alpha_override is None for slot in model.slots.values())
    model.eval()
    contributions(model, x, y, topology.prepare, batch_size=16)
    assert not model.training


@by_topology
def test_only_blended_seeds_are_measured(topology: Topology) -> None:
    model = topology.model()
    first = topology.slots[0]
    x, y = topology.raw_batch(8)
    assert contributions(model, x, y, topology.prepare, batch_size=4) == {}
    model.germinate(first, topology.random_blueprint, topology.additive_style, 3, 1.0)
    assert measured_slots(model) == []  # TRAINING: alpha 0
    model.step_epoch()
    model.advance(first)
    assert measured_slots(model) == []  # BLENDING but alpha still 0
    model.step_epoch()
    assert measured_slots(model) == [first]


@by_topology
def test_fossilized_seeds_only_on_request(topology: Topology) -> None:
    model = blended_model(topology)
    first, second = topology.slots
    model.fossilize(first)
    x, y = topology.raw_batch(12)
    assert set(contributions(model, x, y, topology.prepare, batch_size=5)) == {second}
    both = contributions(model, x, y, topology.prepare, batch_size=5, stages=frozenset({S.FOSSILIZED, S.BLENDING}))
    assert set(both) == {first, second}


@by_topology
def test_bad_arguments(topology: Topology) -> None:
    model = blended_model(topology)
    x, y = topology.raw_batch(4)
    with pytest.raises(ValueError, match="batch_size"):
        contributions(model, x, y, topology.prepare, batch_size=0)
    with pytest.raises(ValueError, match="labels"):
        contributions(model, x, y[:2], topology.prepare, batch_size=2)


@by_topology
def test_pruned_fading_seed_is_not_measured_by_default(topology: Topology) -> None:
    model = blended_model(topology)
    second = topology.slots[1]
    model.slots[second].set_schedule(AlphaSchedule.constant(0.5))
    model.prune(second, "slow", "linear")
    assert second not in measured_slots(model)
