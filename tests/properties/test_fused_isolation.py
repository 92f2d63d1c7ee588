"""Gradient isolation holds in a fused group: in the wide host, a TRAINING seed in any env's slot (seeds
of one blueprint in several envs run as one widened seed) leaves every env's host outputs and host
gradients bit-identical to the same wide host without that seed, and every planted seed learns.

Also: widening itself is exact on the wide host's tensors (each env's parameters are views of its block).
"""

from __future__ import annotations

import copy

import torch
from hypothesis import given, strategies as st

from esper_core.config import LifecycleConfig
from esper_core.run.fused import FusedSlot, _fused_slots
from esper_core.run.widen import env_major, split_envs, widen
from support.lifecycle_strategies import BLUEPRINTS, SLOTS, STYLES, batch, make_model

N_ENVS = 3


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def _host_grads(model) -> dict[str, torch.Tensor]:
    seed_ids = {id(p) for s in model.slots.values() for p in s.seed_parameters()}
    return {n: p.grad for n, p in model.named_parameters() if id(p) not in seed_ids}


def _fused_step(models, x_per_env, y_per_env):
    wide, bindings = widen([m.host for m in models], _fused_slots)
    for m in models:
        m.optimizer.zero_grad(set_to_none=True)
    logits = split_envs(wide(env_major(x_per_env)), len(models))
    loss = sum(torch.nn.functional.cross_entropy(logits[:, e], y) for e, y in enumerate(y_per_env))
    loss.backward()
    for binding in bindings:
        binding.bind()
    for module in wide.modules():
        if isinstance(module, FusedSlot):
            module.bind_grads()  # seeds of one blueprint in several envs ran as one widened seed
    return logits


@given(
    seed=st.integers(0, 2**16),
    planted=st.lists(  # at most one TRAINING seed per env: sequential development
        st.tuples(st.integers(0, N_ENVS - 1), st.sampled_from(SLOTS)), min_size=1, max_size=N_ENVS, unique_by=lambda t: t[0]
    ),
    blueprint=st.sampled_from(tuple(BLUEPRINTS)),
    style=st.sampled_from(tuple(STYLES)),
)
def test_training_seeds_are_invisible_to_every_env_s_host_in_a_fused_group(seed, planted, blueprint, style) -> None:
    lifecycle = LifecycleConfig(min_training_epochs=0, max_seeds=2)
    grown = [make_model(lifecycle=lifecycle, seed=seed + e) for e in range(N_ENVS)]
    plain = [copy.deepcopy(m) for m in grown]
    for env, slot in planted:
        grown[env].germinate(slot, blueprint, style, 2, 1.0)  # TRAINING at once (min_training_epochs=0)
    batches = [batch(seed=seed + 100 + e) for e in range(N_ENVS)]
    xs, ys = [b[0] for b in batches], [b[1] for b in batches]
    out_grown = _fused_step(grown, xs, ys)
    out_plain = _fused_step(plain, xs, ys)
    assert torch.equal(bits(out_grown), bits(out_plain))
    for e in range(N_ENVS):
        with_seed, without = _host_grads(grown[e]), _host_grads(plain[e])
        assert with_seed.keys() == without.keys()
        for name in without:
            assert torch.equal(bits(with_seed[name]), bits(without[name])), (e, name)
    for env, slot in planted:
        seed_params = grown[env].slots[slot].seed.parameters()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in seed_params)


@given(seed=st.integers(0, 2**16))
def test_env_parameters_are_views_of_the_wide_ones(seed) -> None:
    models = [make_model(seed=seed + e) for e in range(N_ENVS)]
    before = [copy.deepcopy(m.host.state_dict()) for m in models]
    wide, _ = widen([m.host for m in models], _fused_slots)
    for m, state in zip(models, before):  # widening changes no value
        for name, value in m.host.state_dict().items():
            assert torch.equal(value, state[name]), name
    with torch.no_grad():
        for p in wide.parameters():
            p.add_(1.0)  # an in-place update of the wide tensors...
    for m, state in zip(models, before):  # ...is every env's update
        for name, p in m.host.named_parameters():
            assert torch.equal(p, state[name] + 1.0), name
