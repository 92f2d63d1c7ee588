"""The built-in hosts, blueprints and blend styles on CUDA the way a GPU run uses them: channels_last
weights and inputs, bf16 autocast, seeds germinated through the model API into every slot.

Skipped without CUDA. Uses the specs directly (no entry points), so it also runs from a plain checkout
on a GPU machine with the repository and ``plugins/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import pytest
import torch

from esper_blends.plugin import BUILTIN_STYLES
from esper_blueprints.plugin import BUILTIN_BLUEPRINTS
from esper_core.config import LifecycleConfig, TrainingConfig
from esper_core.growth.model import MorphogeneticModel
from esper_core.records import TaskInfo
from esper_hosts.resnet import IMPAIRED_SPEC, RESNET_SPEC
from esper_hosts.tiny_cnn import SPEC as TINY_SPEC

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

HOSTS = {spec.name: spec for spec in (RESNET_SPEC, IMPAIRED_SPEC, TINY_SPEC)}
INFO = TaskInfo("cifar-like", in_channels=3, image_size=32, num_classes=10)
BLUEPRINTS = {spec.name: spec for spec in BUILTIN_BLUEPRINTS}
STYLES = {spec.name: spec for spec in BUILTIN_STYLES}


def cuda_model(host_name: str) -> MorphogeneticModel:
    spec = HOSTS[host_name]
    torch.manual_seed(0)
    host = spec.factory(spec.options_type(), INFO).cuda().to(memory_format=torch.channels_last)
    lifecycle = LifecycleConfig(min_training_epochs=1)
    return MorphogeneticModel(host, BLUEPRINTS, STYLES, lifecycle, TrainingConfig()).train()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(8, 3, 32, 32, device="cuda", generator=generator).contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, 10, (8,), device="cuda", generator=generator)


def forward_backward(model: MorphogeneticModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.optimizer.zero_grad()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    return logits.detach()


@pytest.mark.parametrize("host_name", list(HOSTS))
def test_hosts_run_channels_last_under_bf16_autocast(host_name: str) -> None:
    model = cuda_model(host_name)
    x, y = batch()
    logits = forward_backward(model, x, y)
    assert logits.dtype == torch.bfloat16 and logits.shape == (8, 10) and torch.isfinite(logits).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("blueprint", [n for n, spec in BLUEPRINTS.items() if spec.supports("cnn")])  # CNN hosts
@pytest.mark.parametrize("host_name", ["resnet", "resnet_impaired"])
def test_germinate_train_and_blend_on_cuda(host_name: str, blueprint: str, style: str) -> None:
    x, y = batch()
    for slot in cuda_model(host_name).slot_names:
        model = cuda_model(host_name)
        reference = forward_backward(model, x, y)
        model.germinate(slot, blueprint, style, 2, 1.0)
        seed = model.slots[slot].seed
        assert all(p.is_cuda for p in seed.parameters())
        logits = forward_backward(model, x, y)
        assert torch.equal(logits, reference), f"{slot}: TRAINING changed the host output"
        seed_grads = [p.grad for p in model.slots[slot].seed_parameters() if p.grad is not None]
        assert seed_grads and all(torch.isfinite(g).all() for g in seed_grads)
        model.optimizer.step()

        model.step_epoch()
        model.advance(slot)
        model.set_alpha_target(slot, 1.0, "instant")
        logits = forward_backward(model, x, y)
        assert torch.isfinite(logits).all() and logits.shape == reference.shape
        model.optimizer.step()
        logits = forward_backward(model, x, y)
        assert torch.isfinite(logits).all(), f"{slot}: not finite after a blended optimiser step"


def test_a_fused_group_trains_nchw_and_a_lone_env_channels_last() -> None:
    from esper_core.config import load_config
    from esper_core.plugins import load_registry
    from esper_core.run.runner import Runner

    def host_layouts(envs: int) -> set[bool]:
        overrides = {"run": {"envs": envs}, "host": {"name": "tiny_cnn"}, "device": {"device": "cuda", "fused": "auto"}}
        runner = Runner.build(load_config(overrides=overrides, preset="cpu-quick"), load_registry())
        runner._reset_envs()
        weights = [p for env in runner.envs for p in env._require_model().host.parameters() if p.dim() == 4]
        return {w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in weights}

    assert host_layouts(2) == {False}
    assert host_layouts(1) == {True}
