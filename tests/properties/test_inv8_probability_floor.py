"""Invariant 8: with floor f and n valid actions (f * n <= 1) every valid probability is >= f - 1e-6
and the valid probabilities sum to 1; sampling and log_prob use that same floored distribution."""

import torch
from hypothesis import given, strategies as st

from esper_core.rl.distributions import MaskedCategorical
from support.strategies import bool_masks, floors_for, generator, logit_tensors


@st.composite
def floored_cases(draw):
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 9)))
    return draw(logit_tensors(shape)), draw(bool_masks(shape)), draw(floors_for(shape[-1]))


@given(floored_cases())
def test_valid_probabilities_respect_the_floor_and_sum_to_one(case):
    logits, mask, floor = case
    probs = MaskedCategorical(logits, mask, floor).probs
    assert (probs[mask] >= floor - 1e-6).all()
    assert torch.allclose(probs.sum(-1), torch.ones(mask.shape[0]), atol=1e-5)


@given(floored_cases())
def test_log_prob_is_the_log_of_the_floored_probability(case):
    logits, mask, floor = case
    dist = MaskedCategorical(logits, mask, floor)
    for action in range(mask.shape[-1]):
        valid = mask[:, action]
        lp = dist.log_prob(torch.full((mask.shape[0],), action))[valid]
        assert torch.allclose(lp.exp(), dist.probs[valid, action], rtol=1e-4, atol=1e-7)
        if floor > 0:
            assert (lp >= torch.log(torch.tensor(floor)) - 1e-5).all()


@given(st.integers(2, 6), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1))
def test_samples_follow_the_floored_distribution(width, floor_fraction, seed):
    """One near-deterministic row: without the floor in sampling the rare entries would never appear."""
    floor = floor_fraction / width
    logits = torch.full((1, width), -50.0)
    logits[0, 0] = 50.0
    dist = MaskedCategorical(logits, torch.ones(1, width, dtype=torch.bool), floor)
    draws = 4000
    batch = MaskedCategorical(logits.expand(draws, width), torch.ones(draws, width, dtype=torch.bool), floor)
    samples = batch.sample(generator(seed))
    counts = torch.bincount(samples, minlength=width).float()
    expected = dist.probs[0] * draws
    tolerance = 6 * torch.sqrt(expected * (1 - dist.probs[0])) + 1
    assert ((counts - expected).abs() <= tolerance).all(), (counts, expected)
