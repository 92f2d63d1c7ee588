"""Observation encoding and the running normaliser."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from esper_core.rl.observation import ObservationEncoder, RunningNormaliser
from esper_core.ops import Op
from esper_core.stages import SeedStage
from support.policy_builders import BLUEPRINTS, LIFECYCLE, SLOTS, env, seed_slot, space
from support.strategies import action_spaces, env_batches, lifecycle_configs


def _encoder(action_space=None) -> ObservationEncoder:
    return ObservationEncoder(space() if action_space is None else action_space, LIFECYCLE, episode_length=20)


def _value(encoder: ObservationEncoder, row: torch.Tensor, name: str) -> float:
    return float(row[encoder.feature_names.index(name)])


def test_shapes_names_and_blueprint_indices() -> None:
    encoder = _encoder()
    obs = [env(seed_slot("s1", SeedStage.TRAINING, blueprint="conv_heavy")), env()]
    encoded = encoder.encode(obs)
    assert encoded.features.shape == (2, encoder.float_dim) and encoded.features.dtype == torch.float32
    assert len(set(encoder.feature_names)) == encoder.float_dim
    assert encoded.blueprint_index.tolist() == [[0, 1 + BLUEPRINTS.index("conv_heavy"), 0], [0, 0, 0]]
    assert encoder.n_slots == len(SLOTS) and encoder.n_blueprints == len(BLUEPRINTS) + 1


def test_slot_features_stage_one_hot_contribution_flag_and_gates() -> None:
    encoder = _encoder()
    holding = seed_slot("s0", SeedStage.HOLDING, alpha=1.0, seed_age=4, last_contribution=0.25, style="gated")
    training = seed_slot("s1", SeedStage.TRAINING, epochs_in_stage=1, seed_age=1)
    row = encoder.encode([env(holding, training)]).features[0]
    stages = [_value(encoder, row, f"s0.stage={s.name}") for s in SeedStage]
    assert stages == [1.0 if s == SeedStage.HOLDING else 0.0 for s in SeedStage]
    assert _value(encoder, row, "s0.contribution") == pytest.approx(0.25)
    assert _value(encoder, row, "s0.contribution_measured") == 1.0
    assert _value(encoder, row, "s1.contribution") == 0.0 and _value(encoder, row, "s1.contribution_measured") == 0.0
    assert _value(encoder, row, "s0.style=gated") == 1.0 and _value(encoder, row, "s0.style=linear_add") == 0.0
    assert _value(encoder, row, "s0.can_FOSSILIZE") == 1.0 and _value(encoder, row, "s0.can_PRUNE") == 1.0
    # TRAINING for 1 epoch with min_training_epochs=2: not advanceable, too young to prune.
    assert _value(encoder, row, "s1.can_ADVANCE") == 0.0 and _value(encoder, row, "s1.can_PRUNE") == 0.0
    # A TRAINING seed blocks germination everywhere (sequential development).
    assert _value(encoder, row, "germination_open") == 0.0
    assert _value(encoder, row, "s1.epochs_in_stage") == pytest.approx(1 / 20)


def test_last_op_one_hot_and_action_feedback() -> None:
    encoder = _encoder()
    obs = attrs.evolve(env(), last_op=Op.PRUNE, last_action_ok=False)
    row = encoder.encode([obs]).features[0]
    assert [_value(encoder, row, f"last_op={op.name}") for op in Op] == [float(op == Op.PRUNE) for op in Op]
    assert _value(encoder, row, "last_action_ok") == 0.0


def test_clamps_saturate_and_are_reported() -> None:
    encoder = _encoder()
    wild = attrs.evolve(env(), train_loss=1e9, val_loss=float("nan"), val_acc_delta=3.0, val_loss_delta=-float("inf"))
    calm = env()
    raw = encoder.encode([wild, calm]).features
    assert torch.isfinite(raw).all()
    assert _value(encoder, raw[0], "train_loss") == 8.0 and _value(encoder, raw[0], "val_loss") == 8.0
    assert _value(encoder, raw[0], "val_acc_delta") == 0.5
    saturation = dict(zip(encoder.feature_names, encoder.saturation(raw).tolist()))
    assert saturation["train_loss"] == 0.5 and saturation["val_acc_delta"] == 0.5
    # Natural bounds (0 epochs, 0 parameters) are not saturation.
    assert saturation["s0.epochs_in_stage"] == 0.0 and saturation["seed_param_share"] == 0.0


def test_unknown_names_are_errors_not_silent_zeros() -> None:
    encoder = _encoder()
    with pytest.raises(ValueError, match="blueprint 'mystery'.*not in the action space"):
        encoder.encode([env(seed_slot("s0", SeedStage.TRAINING, blueprint="mystery"))])
    with pytest.raises(ValueError, match="blend style 'swirl'"):
        encoder.encode([env(seed_slot("s0", SeedStage.TRAINING, style="swirl"))])
    other_slots = attrs.evolve(env(), slots=env().slots[:2])
    with pytest.raises(ValueError, match="slots"):
        encoder.encode([other_slots])


def test_index_maps_follow_the_action_space() -> None:
    """A blueprint added to the registry (hence to the space) is encodable with no edit here."""
    encoder = _encoder(space(blueprints=(*BLUEPRINTS, "third_party")))
    index = encoder.encode([env(seed_slot("s2", SeedStage.TRAINING, blueprint="third_party"))]).blueprint_index
    assert index.tolist() == [[0, 0, len(BLUEPRINTS) + 1]]


@given(st.data())
def test_features_are_finite_and_within_their_ranges(data: st.DataObject) -> None:
    action_space = data.draw(action_spaces(min_blueprints=1))
    lifecycle = data.draw(lifecycle_configs())
    observations = data.draw(env_batches(action_space, lifecycle))
    extreme = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10))
    wild_fields = ("train_loss", "val_loss", "val_acc", "val_acc_delta", "val_loss_delta", "param_budget_used")
    observations = [
        attrs.evolve(
            o,
            slots=(
                attrs.evolve(o.slots[0], last_contribution=data.draw(extreme), grad_norm_ratio=data.draw(extreme)),
                *o.slots[1:],
            ),
            **{name: data.draw(extreme) for name in wild_fields},
        )
        for o in observations
    ]
    encoder = ObservationEncoder(action_space, lifecycle, episode_length=data.draw(st.integers(1, 50)))
    raw = encoder.encode(observations).features
    low = torch.tensor([f.low for f in encoder.features])
    high = torch.tensor([f.high for f in encoder.features])
    assert torch.isfinite(raw).all()
    assert ((raw >= low) & (raw <= high)).all()


# ------------------------------------------------------------------------------------------ normaliser
def test_normaliser_statistics_move_and_match_numpy() -> None:
    torch.manual_seed(0)
    norm = RunningNormaliser(3)
    x = torch.randn(5, 3)
    assert torch.equal(norm.normalise(x), x.clamp(-5, 5))  # identity before any update
    batches = [torch.randn(n, 3) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([2.0, -3.0, 0.0]) for n in (7, 1, 30)]
    for batch in batches:
        before = norm.mean.clone()
        norm.update(batch)
        assert not torch.equal(norm.mean, before)
    everything = torch.cat(batches).double().numpy()
    np.testing.assert_allclose(norm.mean.numpy(), everything.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), everything.var(0), rtol=1e-10, atol=1e-12)
    assert float(norm.count) == len(everything)
    normalised = norm.normalise(torch.cat(batches))
    assert normalised.mean(0).abs().max() < 1e-4 and (normalised.std(0, unbiased=False) - 1).abs().max() < 1e-3


@given(st.lists(st.integers(1, 20), min_size=1, max_size=5), st.integers(0, 1000))
def test_normaliser_merge_equals_one_pass(sizes: list[int], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    batches = [torch.randn(n, 2, generator=gen) * 3 + 1 for n in sizes]
    merged = RunningNormaliser(2)
    for batch in batches:
        merged.update(batch)
    whole = RunningNormaliser(2)
    whole.update(torch.cat(batches))
    assert torch.allclose(merged.mean, whole.mean, atol=1e-9) and torch.allclose(merged.var, whole.var, atol=1e-9)


def test_normaliser_clips_constant_features_and_round_trips() -> None:
    norm = RunningNormaliser(2, clip=5.0)
    norm.update(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))
    out = norm.normalise(torch.tensor([[2.0, 1.0]]))
    assert out[0, 0] == 5.0  # constant so far (std 0 -> min_std): a move is clipped, not infinite
    assert out[0, 1] == pytest.approx(0.0)
    copy = RunningNormaliser(2)
    copy.load_state_dict(norm.state_dict())
    assert torch.equal(copy.normalise(torch.tensor([[0.3, 7.0]])), norm.normalise(torch.tensor([[0.3, 7.0]])))
    with pytest.raises(ValueError, match="3 features|shape"):
        RunningNormaliser(3).load_state_dict(norm.state_dict())
    with pytest.raises(ValueError, match="width 2"):
        norm.update(torch.zeros(4, 3))
    assert math.isclose(float(copy.count), 2.0)
