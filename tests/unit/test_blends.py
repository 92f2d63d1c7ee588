"""Built-in blend styles: the alpha-0 identity, each formula, per-sample alpha, the gate's parameters."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from esper_blends.gated import Gated
from esper_blends.plugin import BUILTIN_STYLES
from esper_core.protocols import BlendStyle
from esper_core.specs import BlendStyleSpec

STYLES = {spec.name: spec for spec in BUILTIN_STYLES}
NAMES = sorted(STYLES)


def features(batch: int = 4, channels: int = 3, size: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, channels, size, size, generator=generator)
    s = torch.randn(batch, channels, size, size, generator=generator) * 3
    return h, s


def test_the_four_builtin_styles_are_registered_with_formulas() -> None:
    assert [spec.name for spec in BUILTIN_STYLES] == ["linear_add", "linear_multiply", "sigmoid_add", "gated"]
    for spec in BUILTIN_STYLES:
        assert isinstance(spec, BlendStyleSpec)
        assert spec.formula.startswith("h") and "a" in spec.formula
        assert spec.description
        assert isinstance(spec.factory(3), BlendStyle)


@pytest.mark.parametrize("name", NAMES)
@given(
    batch=st.integers(1, 4),
    channels=st.integers(1, 5),
    size=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-3, 1.0, 1e4]),
    per_sample=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float64]),
)
def test_alpha_zero_returns_h_exactly(
    name: str, batch: int, channels: int, size: int, seed: int, scale: float, per_sample: bool, dtype: torch.dtype
) -> None:
    h, s = features(batch, channels, size, seed)
    h, s = h.to(dtype), (s * scale).to(dtype)
    blend = STYLES[name].factory(channels).to(dtype)
    alpha = torch.zeros(batch) if per_sample else torch.zeros(())
    out = blend(h, s, alpha)
    assert out.dtype == h.dtype
    assert torch.equal(out, h)


@pytest.mark.parametrize("name", NAMES)
def test_alpha_zero_identity_holds_for_a_trained_gate_too(name: str) -> None:
    h, s = features()
    blend = STYLES[name].factory(3)
    with torch.no_grad():
        for parameter in blend.parameters():
            parameter.normal_()
    assert torch.equal(blend(h, s, torch.tensor(0.0)), h)


def test_linear_add_formula() -> None:
    h, s = features()
    out = STYLES["linear_add"].factory(3)(h, s, torch.tensor(0.3))
    torch.testing.assert_close(out, h + 0.3 * s)


def test_linear_multiply_formula_and_zero_seed_is_harmless_at_any_alpha() -> None:
    h, s = features()
    blend = STYLES["linear_multiply"].factory(3)
    torch.testing.assert_close(blend(h, s, torch.tensor(0.6)), h * (1 + 0.6 * s))
    assert torch.equal(blend(h, torch.zeros_like(s), torch.tensor(1.0)), h)


def test_sigmoid_add_formula_squashes_negative_seed_outputs() -> None:
    h, s = features()
    blend = STYLES["sigmoid_add"].factory(3)
    torch.testing.assert_close(blend(h, s, torch.tensor(0.8)), h + 0.8 * torch.sigmoid(s) * s)
    very_negative = torch.full_like(s, -50.0)
    contribution = blend(h, very_negative, torch.tensor(1.0)) - h
    assert contribution.abs().max() < 1e-6  # a strongly negative seed output is gated shut
    positive = torch.full_like(s, 20.0)
    torch.testing.assert_close(blend(h, positive, torch.tensor(1.0)) - h, positive)  # positive passes


def test_gated_formula_uses_a_per_sample_gate_in_the_unit_interval() -> None:
    h, s = features(batch=6)
    blend = STYLES["gated"].factory(3)
    assert isinstance(blend, Gated)
    with torch.no_grad():
        blend.gate.weight.copy_(torch.tensor([[2.0, -1.0, 0.5]]))
        blend.gate.bias.fill_(0.1)
    gate = torch.sigmoid(h.mean(dim=(2, 3)) @ blend.gate.weight.T + blend.gate.bias).view(-1, 1, 1, 1)
    torch.testing.assert_close(blend(h, s, torch.tensor(0.5)), h + 0.5 * gate * s)
    values = blend.gate_values(h).flatten()
    assert values.shape == (6,)
    assert ((values > 0) & (values < 1)).all()
    assert values.unique().numel() > 1  # it depends on the sample


def test_fresh_gate_starts_half_open() -> None:
    h, s = features()
    blend = STYLES["gated"].factory(3)
    assert torch.equal(blend.gate_values(h), torch.full((4, 1, 1, 1), 0.5))


def test_gated_owns_parameters_that_learn_and_the_others_own_none() -> None:
    for name in NAMES:
        count = sum(p.numel() for p in STYLES[name].factory(7).parameters())
        assert count == (7 + 1 if name == "gated" else 0), name
    h, s = features()
    blend = STYLES["gated"].factory(3)
    blend(h, s, torch.tensor(1.0)).pow(2).sum().backward()
    assert blend.gate.weight.grad is not None and blend.gate.weight.grad.abs().sum() > 0
    assert blend.gate.bias.grad is not None and blend.gate.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_alpha_equals_each_sample_blended_on_its_own(name: str) -> None:
    h, s = features(batch=4)
    blend = STYLES[name].factory(3)
    alphas = torch.tensor([0.0, 0.25, 1.0, 0.7])
    out = blend(h, s, alphas)
    for i, a in enumerate(alphas):
        torch.testing.assert_close(out[i : i + 1], blend(h[i : i + 1], s[i : i + 1], a))
    assert torch.equal(out[0], h[0])  # the sample switched off is untouched


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_alpha_keeps_a_bf16_feature_map_bf16(name: str) -> None:
    h, s = (t.to(torch.bfloat16) for t in features())
    blend = STYLES[name].factory(3).to(torch.bfloat16)
    assert blend(h, s, torch.full((4,), 0.5)).dtype == torch.bfloat16


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3,), (4, 1), (2, 2)])
def test_alpha_of_the_wrong_shape_is_a_clear_error(name: str, shape: tuple[int, ...]) -> None:
    h, s = features(batch=4)
    with pytest.raises(ValueError, match="alpha must be a 0-dim tensor or one value per sample"):
        STYLES[name].factory(3)(h, s, torch.zeros(shape))


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_features_blend_like_contiguous_ones(name: str) -> None:
    h, s = features()
    blend = STYLES[name].factory(3)
    last = blend(h.contiguous(memory_format=torch.channels_last), s.contiguous(memory_format=torch.channels_last),
                 torch.tensor(0.4))
    torch.testing.assert_close(last, blend(h, s, torch.tensor(0.4)))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_host_features_and_seed_output_when_blending(name: str) -> None:
    h, s = features()
    h.requires_grad_(True)
    s.requires_grad_(True)
    STYLES[name].factory(3)(h, s, torch.tensor(0.5)).sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert s.grad is not None and s.grad.abs().sum() > 0
