"""The CUDA code paths of the model core: bf16 autocast, channels_last, no host syncs in a training step."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from esper_core.growth.counterfactual import contributions
from esper_core.stages import SeedStage as S
from support.lifecycle_strategies import CLASSES, IMAGE, batch, make_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def cuda_model():
    model = make_model()
    model.to("cuda", memory_format=torch.channels_last)
    return model


def cuda_batch(seed: int = 0):
    x, y = batch(16, seed)
    return x.cuda().contiguous(memory_format=torch.channels_last), y.cuda()


def step(model, x, y) -> torch.Tensor:
    model.optimizer.zero_grad()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
        loss = nn.functional.cross_entropy(out.float(), y)
    loss.backward()
    model.record_grad_norms()
    model.optimizer.step()
    return out.detach()


def test_seed_is_built_on_the_hosts_device_and_layout() -> None:
    model = cuda_model()
    model.germinate("early", "conv", "gated", 2, 0.5)
    slot = model.slots["early"]
    assert slot.alpha.device.type == "cuda"
    for p in slot.seed_parameters():
        assert p.device.type == "cuda"
    assert slot.seed.inner.weight.is_contiguous(memory_format=torch.channels_last)


def test_training_seed_is_bitwise_invisible_under_bf16_autocast() -> None:
    model = cuda_model()
    reference = copy.deepcopy(model)
    model.germinate("late", "norm_conv", "add", 2, 1.0)
    for i in range(3):
        x, y = cuda_batch(i)
        grown, plain = step(model, x, y), step(reference, x, y)
        assert torch.equal(grown, plain)
    grown_params = dict(model.named_parameters())
    for name, p in reference.named_parameters():
        assert torch.equal(p, grown_params[name]), name
    assert model.summary()[1].grad_norm_ratio == 0.0  # epoch not closed yet
    model.step_epoch()
    assert model.summary()[1].grad_norm_ratio > 0.0


def test_training_step_and_step_epoch_do_not_sync_with_the_host() -> None:
    model = cuda_model()
    model.germinate("early", "conv", "gated", 2, 0.7)
    x, y = cuda_batch()
    step(model, x, y)  # warm-up (lazy allocations)
    model.step_epoch()
    model.advance("early")
    step(model, x, y)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError):  # the detector is live: a plain .item() is caught
            torch.ones(1, device="cuda").sum().item()
        for _ in range(2):
            step(model, x, y)
        model.step_epoch()  # alpha moves in place on the device
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert model.summary()[0].stage == S.BLENDING
    assert model.slots["early"].alpha.item() == pytest.approx(0.35)


def test_counterfactual_runs_with_autocast_and_restores_train_mode() -> None:
    model = cuda_model()
    model.germinate("early", "conv", "add", 0, 1.0)
    x, y = cuda_batch()
    step(model, x, y)
    model.step_epoch()
    model.advance("early")
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (50, 3, IMAGE, IMAGE), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, CLASSES, (50,), generator=generator)
    result = contributions(
        model, images.cuda(), labels.cuda(), lambda t: t.float() / 255.0, 16, autocast_dtype=torch.bfloat16
    )
    assert set(result) == {"early"}
    assert 0.0 <= result["early"].acc_with <= 1.0 and 0.0 <= result["early"].acc_without <= 1.0
    assert model.training
