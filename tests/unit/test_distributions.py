"""MaskedCategorical: values, the floor, dtype safety and gradients."""

import math

import pytest
import torch

from esper_core.rl.distributions import INVALID_LOGIT, MaskedCategorical


def test_masked_softmax_values():
    dist = MaskedCategorical(torch.tensor([[1.0, 2.0, 50.0]]), torch.tensor([[True, True, False]]))
    expected = torch.softmax(torch.tensor([1.0, 2.0]), 0)
    assert torch.allclose(dist.probs[0, :2], expected)
    assert dist.probs[0, 2] == 0
    assert dist.mode().item() == 1  # the invalid entry's huge logit is ignored
    assert dist.log_prob(torch.tensor([2])).item() == -math.inf


def test_floor_mixes_with_the_softmax():
    logits = torch.tensor([[10.0, 0.0, 0.0, 0.0]])
    dist = MaskedCategorical(logits, torch.ones(1, 4, dtype=torch.bool), floor=0.1)
    expected = 0.1 + 0.6 * torch.softmax(logits[0], 0)
    assert torch.allclose(dist.probs[0], expected)
    assert torch.allclose(dist.log_prob(torch.tensor([3])).exp(), expected[3:])


def test_floor_too_large_for_the_valid_count_degrades_to_uniform():
    dist = MaskedCategorical(torch.tensor([[5.0, 0.0, -3.0]]), torch.ones(1, 3, dtype=torch.bool), floor=0.5)
    assert torch.allclose(dist.probs, torch.full((1, 3), 1 / 3))
    assert abs(dist.entropy().item() - 1.0) < 1e-6


def test_invalid_logit_is_finite_and_representable_in_bf16():
    assert torch.tensor(INVALID_LOGIT, dtype=torch.bfloat16).item() == pytest.approx(INVALID_LOGIT, rel=1e-2)
    dist = MaskedCategorical(torch.zeros(1, 3), torch.tensor([[True, False, True]]))
    assert torch.isfinite(dist.masked_logits).all()


def test_bf16_logits_give_float32_results_close_to_float32_logits():
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    mask = torch.rand(4, 5, generator=torch.Generator().manual_seed(1)) < 0.7
    mask[:, 0] = True
    full = MaskedCategorical(logits, mask, 0.05)
    half = MaskedCategorical(logits.to(torch.bfloat16), mask, 0.05)
    assert half.probs.dtype == torch.float32
    assert torch.allclose(half.probs, full.probs, atol=2e-2)


def test_entropy_is_normalised():
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    entropy = MaskedCategorical(torch.zeros(2, 4), mask).entropy()
    assert entropy.tolist() == pytest.approx([1.0, 0.0], abs=1e-6)


def test_entropy_gradient_survives_a_near_collapsed_floored_head():
    logits = torch.tensor([[12.0, 0.0, 0.0]], requires_grad=True)
    MaskedCategorical(logits, torch.ones(1, 3, dtype=torch.bool), floor=0.1).entropy().sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert logits.grad[0, 0] < 0  # more entropy = less mass on the dominant entry


def test_gradients_stay_finite_with_extreme_logits_and_masks():
    logits = torch.tensor([[1e7, -1e7, 0.0, 3.0], [-1e6, 1e6, 2.0, -2.0]], requires_grad=True)
    mask = torch.tensor([[True, True, False, True], [False, True, True, False]])
    for floor in (0.0, 0.1):
        dist = MaskedCategorical(logits, mask, floor)
        loss = dist.log_prob(torch.tensor([1, 2])).sum() + dist.entropy().sum()
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()
        assert (grad[~mask] == 0).all()


def test_sampling_is_reproducible_with_a_generator_and_accepts_sample_shapes():
    dist = MaskedCategorical(torch.zeros(3, 6), torch.ones(3, 6, dtype=torch.bool), 0.1)
    first = dist.sample(torch.Generator().manual_seed(7))
    assert torch.equal(first, dist.sample(torch.Generator().manual_seed(7)))
    draws = torch.stack([dist.sample(torch.Generator().manual_seed(i)) for i in range(5)])
    assert dist.log_prob(draws).shape == (5, 3)


@pytest.mark.parametrize(
    "logits, mask, floor, error",
    [
        (torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool), 0.0, ValueError),
        (torch.zeros(2, 3), torch.ones(2, 3), 0.0, TypeError),
        (torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool), 1.5, ValueError),
    ],
)
def test_bad_arguments_are_rejected(logits, mask, floor, error):
    with pytest.raises(error):
        MaskedCategorical(logits, mask, floor)
