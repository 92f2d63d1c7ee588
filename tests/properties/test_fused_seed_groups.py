"""A fused slot's widened seed groups always run the seeds the envs hold now: after any member's seed is
replaced by another module (pruned, released, germinated again), the fused output is each env's own slot
output and the new seed receives its gradient.

Why: ``FusedSlot`` caches one widened module per (blueprint, mode) and reuses it while its members are
unchanged. Members used to be compared by ``id`` of the seed module, and CPython gives a new object the
address of one just freed, so a re-germinated seed could match its released predecessor's entry: it then
ran on the predecessor's widened weights and its own parameters got no gradient, silently. Here ``id`` is
patched to collide every time (the worst case of that reuse).
"""

from __future__ import annotations

import copy
from unittest import mock

import torch
from hypothesis import given, strategies as st

from esper_core.config import LifecycleConfig
from esper_core.run import fused
from esper_core.run.fused import FusedSlot, _fused_slots
from esper_core.run.widen import env_major, split_envs, widen
from support.lifecycle_strategies import BLUEPRINTS, batch, make_model

N_ENVS = 3
SLOT = "early"


def _grown(seed: int, blended: bool) -> list:
    """N_ENVS models with a ``conv`` seed at SLOT, still TRAINING or blended in at alpha 1."""
    lifecycle = LifecycleConfig(min_training_epochs=0, max_seeds=2)
    models = [make_model(lifecycle=lifecycle, seed=seed + e) for e in range(N_ENVS)]
    for model in models:
        model.germinate(SLOT, "conv", "add", 1, 1.0)
        if blended:
            model.advance(SLOT)
            model.step_epoch()  # tempo 1: alpha reaches 1
    return models


@given(seed=st.integers(0, 2**16), replaced=st.integers(0, N_ENVS - 1), blended=st.booleans())
def test_a_replaced_seed_never_runs_on_its_predecessor_s_widened_weights(seed, replaced, blended) -> None:
    models = _grown(seed, blended)
    wide, _ = widen([m.host for m in models], _fused_slots)
    fused_slots = [m for m in wide.modules() if isinstance(m, FusedSlot)]
    xs = [batch(seed=seed + 100 + e)[0] for e in range(N_ENVS)]
    with mock.patch.object(fused, "id", lambda obj: 0, create=True):  # every address reused
        wide(env_major(xs))  # builds and caches the group of the three seeds
        slot = models[replaced].slots[SLOT]
        with torch.no_grad():
            successor = copy.deepcopy(slot.seed)
            for p in successor.parameters():
                p.normal_()  # other weights than the predecessor's
        slot.seed = successor
        for model in models:
            model.zero_grad(set_to_none=True)
        out = split_envs(wide(env_major(xs)), N_ENVS)
        out.sum().backward()
        for module in fused_slots:
            module.bind_grads()
    for e, model in enumerate(models):
        torch.testing.assert_close(out[:, e], model(xs[e]), rtol=1e-5, atol=1e-5, msg=f"env {e}")
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in successor.parameters())
