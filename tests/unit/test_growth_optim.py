"""GrowthOptimizer: per-seed optimisers that never touch the host's moments; prune drops, fossilize merges."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from esper_core.config import TrainingConfig
from esper_core.growth.optimizer import GrowthOptimizer
from support.lifecycle_strategies import FAST_LIFECYCLE, batch, make_model, train_step


def host_state(model) -> dict[int, torch.Tensor]:
    host = model.optimizer.host
    return {id(p): host.state[p]["momentum_buffer"].clone() for g in host.param_groups for p in g["params"]}


def test_germination_leaves_host_optimiser_moments_untouched() -> None:
    model = make_model()
    x, y = batch()
    for _ in range(2):
        train_step(model, x, y)
    before = host_state(model)
    groups_before = [list(g["params"]) for g in model.optimizer.host.param_groups]
    model.germinate("early", "conv", "gated", 2, 0.5)
    after = host_state(model)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert [list(g["params"]) for g in model.optimizer.host.param_groups] == groups_before
    seed_ids = {id(p) for p in model.slots["early"].seed_parameters()}
    assert seed_ids.isdisjoint(id(p) for g in groups_before for p in g)
    seed_optimizer = model.optimizer.seed_optimizer("early")
    assert seed_optimizer.param_groups[0]["lr"] == model.training_config.seed_lr
    assert {id(p) for p in seed_optimizer.param_groups[0]["params"]} == seed_ids  # blend gate included


def test_seed_optimiser_state_is_dropped_on_prune() -> None:
    model = make_model()
    x, y = batch()
    model.germinate("early", "conv", "add", 2, 0.5)
    for _ in range(FAST_LIFECYCLE.min_prune_age):
        train_step(model, x, y)
        model.step_epoch()
    seed_optimizer = model.optimizer.seed_optimizer("early")
    buffers = [seed_optimizer.state[p]["momentum_buffer"] for p in model.slots["early"].seed_parameters()]
    assert buffers and all(b.abs().sum() > 0 for b in buffers)
    watch = [weakref.ref(b) for b in buffers]
    optimizer_ref = weakref.ref(seed_optimizer)
    del buffers, seed_optimizer
    host_before = host_state(model)
    model.prune("early", "instant", "linear")
    assert model.optimizer.seed_slots == ()
    assert "early" not in model.optimizer.state_dict()["seeds"]
    with pytest.raises(KeyError, match="no seed optimiser for slot 'early'"):
        model.optimizer.seed_optimizer("early")
    gc.collect()
    assert optimizer_ref() is None and all(w() is None for w in watch)  # memory actually freed
    host_after = host_state(model)
    assert all(torch.equal(host_after[k], host_before[k]) for k in host_before)
    # the pruned seed no longer collects gradients
    train_step(model, x, y)
    assert all(p.grad is None for p in model.slots["early"].seed_parameters())


def test_fossilize_moves_params_and_momentum_into_a_host_group() -> None:
    model = make_model()
    x, y = batch()
    model.germinate("early", "conv", "gated", 0, 0.5)
    train_step(model, x, y)
    model.step_epoch()
    model.advance("early")
    model.advance("early")
    train_step(model, x, y)
    params = model.slots["early"].seed_parameters()
    momentum = [model.optimizer.seed_optimizer("early").state[p]["momentum_buffer"].clone() for p in params]
    model.optimizer.host.param_groups[0]["lr"] = 0.01  # e.g. a schedule moved the host lr
    model.fossilize("early")
    host = model.optimizer.host
    group = host.param_groups[-1]
    assert group["esper_group"] == "fossil:early" and group["lr"] == 0.01
    assert [id(p) for p in group["params"]] == [id(p) for p in params]
    assert all(torch.equal(host.state[p]["momentum_buffer"], m) for p, m in zip(params, momentum))
    assert model.optimizer.seed_slots == ()


def test_zero_grad_and_step_cover_host_and_seeds() -> None:
    model = make_model()
    x, y = batch()
    model.germinate("late", "conv", "add", 2, 0.5)
    seed_param = model.slots["late"].seed.inner.weight
    host_param = model.host.stem[0].weight
    before_seed, before_host = seed_param.detach().clone(), host_param.detach().clone()
    train_step(model, x, y)
    assert not torch.equal(before_seed, seed_param) and not torch.equal(before_host, host_param)
    model.optimizer.zero_grad()
    assert seed_param.grad is None and host_param.grad is None


def test_state_dict_layout_is_checked_on_load() -> None:
    model = make_model()
    model.germinate("early", "conv", "add", 2, 0.5)
    state = model.optimizer.state_dict()
    assert state["layout"] == {"fossil_groups": [], "seeds": ["early"]}
    with pytest.raises(ValueError, match="load_morphology"):
        make_model().optimizer.load_state_dict(state)


def test_empty_host_is_refused_and_nesterov_is_available() -> None:
    with pytest.raises(ValueError, match="at least one host parameter"):
        GrowthOptimizer([], TrainingConfig())
    optimizer = GrowthOptimizer([torch.nn.Parameter(torch.zeros(2))], TrainingConfig(), nesterov=True)
    assert optimizer.host.param_groups[0]["nesterov"] is True
    optimizer.add_seed("s", [])  # parameter-free seeds are tolerated
    optimizer.step()
    optimizer.fossilize_seed("s")
    assert optimizer.fossil_slots == ()
