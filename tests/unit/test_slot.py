"""SeedSlot forward by stage: isolation in TRAINING, blending through an in-place alpha buffer, overrides.

Stage behaviour runs once per topology (``support.topologies``): image features [B, C, H, W] with a conv
seed, and a transformer's residual stream [B, T, D] with a stream seed and the real ``linear_add`` style."""

from __future__ import annotations

import pytest
import torch

from esper_core.growth.alpha import AlphaSchedule
from esper_core.growth.slot import SeedSlot, isolated_seed_output
from esper_core.stages import SeedStage as S
from support.lifecycle_strategies import FAST_LIFECYCLE
from support.topologies import Topology, by_topology


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def slot_in(topology: Topology, stage: S, alpha: float = 0.0) -> SeedSlot:
    """A slot of ``topology`` holding its random-output seed with the additive style, at ``stage``."""
    torch.manual_seed(0)
    slot = topology.lone_slot()
    slot.install(topology.seed_module(), topology.style_module(), topology.random_blueprint, topology.additive_style,
                 tempo=2, target=0.7)
    slot.stage = stage
    slot.set_schedule(AlphaSchedule.constant(alpha))
    return slot


def test_isolated_output_is_bitwise_the_host_features_even_for_negative_zero_and_nan_seeds() -> None:
    h = torch.tensor([[-0.0, 0.0, 1.5, -2.25]], requires_grad=True)
    s = torch.tensor([[float("nan"), float("inf"), 3.0, -1.0]], requires_grad=True)
    out = isolated_seed_output(h, s)
    assert torch.equal(bits(out), bits(h))
    assert out.data_ptr() != h.data_ptr()  # a copy: the host may modify it in place
    grad = torch.tensor([[1.0, -2.0, 0.5, 4.0]])
    out.backward(grad)
    assert torch.equal(h.grad, grad) and torch.equal(s.grad, grad)


def test_isolated_output_checks_shapes() -> None:
    with pytest.raises(ValueError, match="seed output shape"):
        isolated_seed_output(torch.zeros(1, 2), torch.zeros(1, 3))


def test_isolated_output_casts_the_seed_gradient_to_the_seed_dtype() -> None:
    h = torch.randn(2, 3, requires_grad=True)
    s = torch.randn(2, 3, dtype=torch.bfloat16, requires_grad=True)
    isolated_seed_output(h, s).sum().backward()
    assert s.grad.dtype == torch.bfloat16 and h.grad.dtype == torch.float32


@by_topology
@pytest.mark.parametrize("stage", [S.DORMANT, S.EMBARGOED, S.RESETTING])
def test_empty_stages_pass_features_through_as_the_same_tensor(topology: Topology, stage: S) -> None:
    slot = topology.lone_slot()
    slot.stage = stage
    h = topology.features()
    assert slot(h) is h


@by_topology
def test_pruned_slot_passes_through_once_alpha_is_zero(topology: Topology) -> None:
    slot = slot_in(topology, S.PRUNED, alpha=0.0)
    h = topology.features()
    assert slot(h) is h


@by_topology
def test_training_forward_and_host_gradient_are_bitwise_unchanged_and_the_seed_learns(topology: Topology) -> None:
    slot = slot_in(topology, S.TRAINING)
    h_plain = topology.features().requires_grad_()
    h_seeded = topology.features().requires_grad_()
    weight = topology.features(seed=1)
    (h_plain * weight).sum().backward()
    out = slot(h_seeded)
    assert torch.equal(bits(out), bits(h_seeded))
    (out * weight).sum().backward()
    assert torch.equal(bits(h_seeded.grad), bits(h_plain.grad))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in slot.seed.parameters())


@by_topology
def test_training_under_no_grad_skips_the_seed(topology: Topology) -> None:
    slot = slot_in(topology, S.TRAINING)
    h = topology.features()
    with torch.no_grad():
        assert slot(h) is h


@by_topology
@pytest.mark.parametrize("stage", [S.BLENDING, S.HOLDING, S.FOSSILIZED, S.PRUNED])
def test_blending_stages_blend_and_let_host_gradient_through_the_seed_unless_isolated(topology: Topology, stage: S) -> None:
    slot = slot_in(topology, stage, alpha=0.5)
    h = topology.features().requires_grad_()
    out = slot(h)
    with torch.no_grad():
        expected = h + 0.5 * slot.seed(h)
    assert torch.allclose(out, expected)
    out.sum().backward()
    # identity-only gradient would be all ones; the path through the seed changes it, except in a stage the
    # topology's host declares isolated
    through_seed = not torch.allclose(h.grad, torch.ones_like(h))
    assert through_seed == (stage not in topology.isolation)


@by_topology
def test_alpha_is_a_zero_dim_buffer_updated_in_place(topology: Topology) -> None:
    slot = slot_in(topology, S.BLENDING, alpha=0.0)
    buffer = slot.alpha
    pointer = buffer.data_ptr()
    slot.set_schedule(AlphaSchedule(start=0.0, target=1.0, epochs=4).advanced())
    assert slot.alpha is buffer and buffer.data_ptr() == pointer and buffer.dim() == 0
    assert slot.alpha.item() == 0.25
    assert "alpha" in dict(slot.named_buffers())


@by_topology
def test_per_sample_alpha_override_switches_the_seed_per_row(topology: Topology) -> None:
    slot = slot_in(topology, S.HOLDING, alpha=0.7)
    h = topology.features()
    with torch.no_grad():
        as_is = slot(h)
        with slot.alpha_override(torch.tensor([0.7, 0.0, 0.7])):
            mixed = slot(h)
    assert torch.equal(mixed[0], as_is[0]) and torch.equal(mixed[2], as_is[2])
    assert torch.equal(mixed[1], h[1])
    assert slot._alpha_override is None  # restored after the block
    with pytest.raises(ValueError, match=r"\[B\]"):
        with slot.alpha_override(torch.tensor(0.0)):
            pass


@by_topology
def test_tick_counts_embargo_and_reset_then_frees_the_slot(topology: Topology) -> None:
    slot = slot_in(topology, S.PRUNED, alpha=0.0)
    stages = []
    for _ in range(5):
        transitions, released = slot.tick(FAST_LIFECYCLE)
        stages.append(slot.stage)
        if transitions and transitions[0].to_stage == S.EMBARGOED:
            assert released and slot.seed is None and slot.seed_params == 0
    # embargo 2 epochs, resetting 1 epoch (FAST_LIFECYCLE)
    assert stages == [S.EMBARGOED, S.EMBARGOED, S.RESETTING, S.DORMANT, S.DORMANT]


@by_topology
def test_record_round_trip(topology: Topology) -> None:
    slot = slot_in(topology, S.BLENDING)
    slot.set_schedule(AlphaSchedule(start=0.0, target=0.7, epochs=3, curve="cosine").advanced())
    slot.seed_age, slot.epochs_in_stage, slot.last_contribution = 5, 1, 0.125
    record = slot.record()
    other = topology.lone_slot()
    other.restore_record(record, topology.seed_module(), topology.style_module())
    assert other.record() == record
    assert other.summary() == slot.summary()
    assert other.alpha.item() == slot.alpha.item()
