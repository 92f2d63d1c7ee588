"""ppo_v2 policy: contract, legal batched acting, recurrent state, stored features, exact resume."""

from __future__ import annotations

import pytest
import torch

from esper_core.config import ConfigError, structure_options
from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations
from esper_core.ops import HEADS
from esper_core.protocols import Policy
from esper_policies.ppo_v2 import SPEC, PPOV2Options, PPOV2Policy
from support.ppo_builders import games, policy, policy_for, round_trip, rollout
from support.slot_game import LIFECYCLE, SlotGame, play_round
from support.policy_builders import context as other_context


def _observations(n: int = 4) -> list:
    return [SlotGame(i).reset(i % 3) for i in range(n)]


def test_spec_and_protocol() -> None:
    p = policy()
    assert SPEC.name == "ppo_v2" and SPEC.learns and SPEC.options_type is PPOV2Options
    assert isinstance(p, Policy) and isinstance(p, PPOV2Policy) and p.learns


def test_act_is_batched_legal_and_stores_what_it_acted_on() -> None:
    p = policy()
    observations = _observations()
    out = p.act(observations, p.initial_state(4))
    assert out.actions.shape == (4, len(HEADS)) and out.log_probs.shape == (4, len(HEADS))
    assert torch.isfinite(out.log_probs).all() and out.value.shape == (4,)
    truth = compute_action_masks(mask_inputs_from_observations(observations, p.space, LIFECYCLE), out.actions)
    for i, head in enumerate(HEADS):
        assert torch.equal(out.masks[head], truth[head])
        assert out.masks[head].gather(1, out.actions[:, i : i + 1]).all()
    stored = p.layout.unpack(out.features)
    encoded = p.encoder.encode(observations)
    assert torch.equal(stored.raw, encoded.features)
    assert torch.equal(stored.normalised, p.normaliser.normalise(encoded.features))
    assert torch.equal(stored.blueprint_index, encoded.blueprint_index)


def test_deterministic_act_is_the_mode_and_sampling_follows_the_generator() -> None:
    p = policy()
    observations = _observations()
    state = p.initial_state(4)
    first, second = p.act(observations, state, deterministic=True), p.act(observations, state, deterministic=True)
    assert torch.equal(first.actions, second.actions)
    generator_state = p.generator.get_state()
    a = p.act(observations, state)
    p.generator.set_state(generator_state)
    b = p.act(observations, state)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.log_probs, b.log_probs)


def test_state_advances_and_reset_state_zeroes_only_finished_envs() -> None:
    p = policy()
    out = p.act(_observations(), None)
    h, c = out.state
    assert h.shape == (1, 4, p.options.lstm_dim) and h.abs().sum() > 0
    reset = p.reset_state(out.state, torch.tensor([True, False, True, False]))
    assert torch.equal(reset[0][:, [0, 2]], torch.zeros(1, 2, p.options.lstm_dim))
    assert torch.equal(reset[0][:, [1, 3]], h[:, [1, 3]]) and torch.equal(reset[1][:, [1, 3]], c[:, [1, 3]])
    # A reset env acts exactly like a fresh one.
    observations = _observations()
    fresh = p.act(observations, p.initial_state(4), deterministic=True)
    after_reset = p.act(observations, reset, deterministic=True)
    assert torch.equal(fresh.log_probs[[0, 2]], after_reset.log_probs[[0, 2]])
    with pytest.raises(ValueError, match="recurrent state is for 4 env"):
        p.act(observations[:3], reset)


def test_state_dict_round_trip_gives_identical_next_actions_and_updates() -> None:
    a = policy(seed=1)
    a.update(rollout(a, seed=1))  # optimiser moments and normaliser statistics are non-trivial now
    saved = round_trip(a.state_dict())
    b = policy(seed=99)
    b.load_state_dict(saved)
    observations = _observations()
    out_a, out_b = a.act(observations, None), b.act(observations, None)
    assert torch.equal(out_a.actions, out_b.actions) and torch.equal(out_a.log_probs, out_b.log_probs)
    assert torch.equal(out_a.value, out_b.value)
    # ... and they keep agreeing through a whole round and an update (optimiser state, generator, normaliser).
    result_a = play_round(a, games(4, seed=3))
    result_b = play_round(b, games(4, seed=3))
    assert result_a.returns == result_b.returns
    metrics_a, metrics_b = a.update(result_a.rollout), b.update(result_b.rollout)
    assert metrics_a["value_loss"] == metrics_b["value_loss"]
    for (name, pa), pb in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_load_refuses_another_action_space_or_observation_layout() -> None:
    saved = policy().state_dict()
    other = policy_for(other_context(n_envs=2))
    with pytest.raises(ValueError, match="another action space"):
        other.load_state_dict(saved)
    saved.pop("action_layout")
    with pytest.raises(ValueError, match="observation layout"):
        other.load_state_dict(saved)
    with pytest.raises(KeyError, match="optimizer"):
        policy().load_state_dict({k: v for k, v in policy().state_dict().items() if k != "optimizer"})


def test_bad_options_are_reported_with_the_key() -> None:
    with pytest.raises(ValueError, match=r"entropy_warn\.opp: not an action head; did you mean op\?"):
        PPOV2Options(entropy_warn={"opp": 0.2})
    with pytest.raises(ValueError, match=r"minibatches: must be an integer in \[1, 4096\] \(got 0\)"):
        PPOV2Options(minibatches=0)
    assert PPOV2Options(entropy_warn={"op": 0.3}).entropy_warn["blueprint"] == 0.1


@pytest.mark.parametrize(
    ("options", "key_path", "fragment"),
    [
        ({"prob_floors": {"blueprnt": 0.1}}, "policy.options.prob_floors.blueprnt", "did you mean blueprint?"),
        ({"prob_floors": {"op": 1.5}}, "policy.options.prob_floors.op", "must be a number in [0, 1)"),
        ({"gamma": 0.0}, "policy.options.gamma", "must be in (0.0, 1.0]"),
        ({"clip_ratio": "big"}, "policy.options.clip_ratio", "expected float, got str 'big'"),
        ({"clip_ratoi": 0.2}, "policy.options.clip_ratoi", "did you mean clip_ratio?"),
    ],
)
def test_options_from_a_config_name_the_full_key(options: dict, key_path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        structure_options(SPEC, options, "policy.options", source="run.toml")
    (problem,) = caught.value.problems
    assert (problem.key_path, problem.source) == (key_path, "run.toml") and fragment in problem.message


def test_a_per_head_table_given_in_part_keeps_the_other_heads_defaults() -> None:
    """``[policy.options.prob_floors] op = 0.15`` must not drop every other head's floor."""
    defaults = PPOV2Options()
    changed = structure_options(SPEC, {"prob_floors": {"op": 0.15}, "entropy_coefs": {"slot": 2.0}}, "policy.options")
    assert changed.prob_floors == {**defaults.prob_floors, "op": 0.15}
    assert changed.entropy_coefs == {**defaults.entropy_coefs, "slot": 2.0}
