"""Every built-in blueprint x every built-in blend style germinates into every slot of the ResNet hosts.

For each combination: the seed builds and keeps the feature shape; in TRAINING the host's output and
gradients are bit-identical to the host without the seed while the seed gets gradient; blended in at
alpha 0, and even at alpha 1 while the seed is fresh, the output moves by < 1e-3 relative; forward and
backward run throughout. Plugins come from the real registry (entry points), as in a run.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator

import pytest
import torch
from torch import nn

from esper_blends.plugin import BUILTIN_STYLES
from esper_blueprints.plugin import BUILTIN_BLUEPRINTS
from esper_core.config import LifecycleConfig, TrainingConfig
from esper_core.growth.model import MorphogeneticModel
from esper_core.plugins import load_registry
from esper_core.records import TaskInfo
from esper_core.stages import SeedStage

HOSTS = ("resnet", "resnet_impaired")
INFO = TaskInfo("matrix", in_channels=3, image_size=12, num_classes=5)
LIFECYCLE = LifecycleConfig(min_training_epochs=1)
RELATIVE_TOLERANCE = 1e-3


@lru_cache(maxsize=1)
def registry():
    return load_registry(environ={})  # only the installed entry points; no ESPER_* switches


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second thread only adds contention on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def fresh_model(host_name: str) -> MorphogeneticModel:
    """The same host weights every time (seeded), with a SeedSlot at every slot point."""
    spec = registry().get("host", host_name)
    torch.manual_seed(0)
    host = spec.factory(spec.options_type(), INFO)
    blueprints, styles = registry().specs("blueprint"), registry().specs("blend_style")
    return MorphogeneticModel(host, blueprints, styles, LIFECYCLE, TrainingConfig()).train()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, INFO.in_channels, INFO.image_size, INFO.image_size, generator=generator)
    return x, torch.randint(0, INFO.num_classes, (2,), generator=generator)


def relative_change(out: torch.Tensor, before: torch.Tensor) -> float:
    return ((out - before).norm() / before.norm().clamp_min(1e-12)).item()


Grads = dict[str, torch.Tensor]


def host_grads(model: MorphogeneticModel, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Grads]:
    """Output and the gradients of the host's own parameters (seed and blend parameters left out)."""
    model.zero_grad(set_to_none=True)
    out = model(x)
    nn.functional.cross_entropy(out, y).backward()
    seed_ids = {id(p) for slot in model.slots.values() for p in slot.seed_parameters()}
    named = model.host.named_parameters()
    grads = {n: p.grad.clone() for n, p in named if p.grad is not None and id(p) not in seed_ids}
    return out.detach(), grads


@lru_cache(maxsize=None)
def reference(host_name: str) -> tuple[tuple[str, ...], torch.Tensor, Grads]:
    """Slot names, output and host gradients of the seedless host (identical for every case)."""
    model = fresh_model(host_name)
    return (model.slot_names, *host_grads(model, *batch()))


def seed_grad_total(model: MorphogeneticModel, slot: str) -> float:
    return sum(p.grad.abs().sum().item() for p in model.slots[slot].seed_parameters() if p.grad is not None)


def test_the_registry_offers_every_builtin_blueprint_and_style() -> None:
    assert set(registry().names("blueprint")) >= {spec.name for spec in BUILTIN_BLUEPRINTS}
    assert set(registry().names("blend_style")) >= {spec.name for spec in BUILTIN_STYLES}


@pytest.mark.slow
@pytest.mark.parametrize("style", [spec.name for spec in BUILTIN_STYLES])
@pytest.mark.parametrize("blueprint", [spec.name for spec in BUILTIN_BLUEPRINTS if spec.supports("cnn")])  # CNN hosts here
@pytest.mark.parametrize("host_name", HOSTS)
def test_germinate_blend_and_backprop_in_every_slot(host_name: str, blueprint: str, style: str) -> None:
    x, y = batch()
    slot_names, reference_out, reference_grads = reference(host_name)
    assert len(slot_names) == 3
    for slot in slot_names:
        model = fresh_model(host_name)
        torch.manual_seed(2)
        model.germinate(slot, blueprint, style, 2, 1.0)
        assert model.slots[slot].stage == SeedStage.TRAINING
        out, grads = host_grads(model, x, y)
        assert out.shape == reference_out.shape
        assert torch.equal(out, reference_out), f"{slot}: TRAINING changed the host output"
        assert grads.keys() == reference_grads.keys()
        assert all(torch.equal(grads[n], reference_grads[n]) for n in grads), f"{slot}: host grads changed"
        assert seed_grad_total(model, slot) > 0, f"{slot}: the seed got no gradient in TRAINING"

        model.step_epoch()
        model.advance(slot)
        assert model.slots[slot].stage == SeedStage.BLENDING
        assert model.slots[slot].alpha.item() == 0.0
        out, _ = host_grads(model, x, y)
        assert relative_change(out, reference_out) < RELATIVE_TOLERANCE, f"{slot}: alpha 0 moved the output"

        model.set_alpha_target(slot, 1.0, "instant")
        out, grads = host_grads(model, x, y)
        assert out.shape == reference_out.shape and torch.isfinite(out).all()
        change = relative_change(out, reference_out)
        assert change < RELATIVE_TOLERANCE, f"{slot}: a fresh seed at alpha 1 is not harmless"
        assert grads.keys() == reference_grads.keys()  # the host again gets gradient through the slot
        assert seed_grad_total(model, slot) > 0, f"{slot}: the seed got no gradient while blending"
