"""ppo_v2's ``critic_trunk`` option: with "own" the critic reads its own feed-forward trunk on the observation,
so no loss crosses between actor and critic; "shared" (the default) is exactly the network of every earlier
checkpoint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esper_core.config import ConfigError, structure_options
from esper_core.ops import HEADS
from esper_policies.ppo_v2 import SPEC, PPOV2Options
from esper_policies.ppo_v2.network import MIN_CRITIC_WIDTH, PolicyNetwork, segment_starts
from esper_policies.ppo_v2.update import prepare_inputs
from support.ppo_builders import assert_continues_identically, policy, rollout, round_trip
from support.slot_game import game_space

SIZES = game_space().head_sizes
T, B = 6, 3

#: The network's state dict keys as they were before ``critic_trunk`` existed: every saved checkpoint has these.
SHARED_KEYS = [
    "blueprint_embedding.weight",
    *(f"feature_net.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")),
    *(f"lstm.{p}_l0" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
    "post_norm.weight", "post_norm.bias",
    *(
        f"heads.{head}.{i}.{p}"
        for head in HEADS
        for i in ((0, 2, 4) if head == "blueprint" else (0, 2))
        for p in ("weight", "bias")
    ),
    *(f"critic.{i}.{p}" for i in (0, 1, 3, 4, 6, 7, 9) for p in ("weight", "bias")),
    *(f"q_head.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")),
]
OWN_EXTRA_KEYS = ["critic_embedding.weight", *(f"critic_feature_net.{i}.{p}" for i in (0, 1) for p in ("weight", "bias"))]


def _net(critic_trunk: str, feature_dim: int = 16, lstm_dim: int = 24) -> PolicyNetwork:
    torch.manual_seed(0)
    return PolicyNetwork(obs_dim=10, n_slots=2, n_blueprints=4, head_sizes=SIZES, feature_dim=feature_dim,
                         lstm_dim=lstm_dim, blueprint_embed_dim=3, critic_trunk=critic_trunk)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    features, blueprints = torch.randn(T, B, 10, generator=gen), torch.randint(0, 4, (T, B, 2), generator=gen)
    reset_before = torch.zeros(T, B, dtype=torch.bool)
    reset_before[2, 1] = reset_before[4, 0] = True
    return features, blueprints, reset_before


def _unroll(net: PolicyNetwork, seed: int = 0):
    features, blueprints, reset_before = _inputs(seed)
    out, _ = net.unroll(features, blueprints, net.initial_state(B), reset_before, segment_starts(reset_before))
    return out


def _grads(output: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor | None]:
    return list(torch.autograd.grad(output.sum(), params, retain_graph=True, allow_unused=True))


def _reached(grad: torch.Tensor | None) -> bool:
    return grad is not None and bool(grad.any())


def _ids(params) -> set[int]:
    return {id(p) for p in params}


# ------------------------------------------------------------------------------------------ gradients
def test_with_an_own_trunk_no_gradient_crosses_between_actor_and_critic() -> None:
    net = _net("own")
    groups = net.parameter_groups()
    critic = groups["critic"]
    others = [p for name, ps in groups.items() if name != "critic" for p in ps]
    out = _unroll(net)
    # The value reaches its own trunk and MLP, and nothing else (the LSTM, heads, Q, the shared embedding).
    value_grads = _grads(out.value, critic + others)
    assert all(_reached(g) for g in value_grads[: len(critic)])
    assert not any(_reached(g) for g in value_grads[len(critic):])
    # No head's logits reach any critic parameter, nor does the diagnostic Q.
    for head in HEADS:
        assert not any(_reached(g) for g in _grads(out.logits[head], critic)), head
    assert not any(_reached(g) for g in _grads(out.q, critic + groups["trunk"]))
    # ... while the heads do reach the recurrent trunk: it is the actor's now.
    assert any(_reached(g) for g in _grads(out.logits["op"], list(net.lstm.parameters())))


def test_with_the_shared_trunk_the_value_trains_the_lstm() -> None:
    """The counterpart of the test above: without it that test could pass on a network where nothing crosses."""
    net = _net("shared")
    out = _unroll(net)
    assert all(_reached(g) for g in _grads(out.value, [net.lstm.weight_ih_l0, net.lstm.weight_hh_l0]))
    assert _reached(_grads(out.value, [net.blueprint_embedding.weight])[0])


def _actor_and_critic_after_an_update(critic_trunk: str, **changes) -> tuple[torch.Tensor, torch.Tensor]:
    # Large target_kl: no KL early stop, so both runs take the same gradient steps. The critic clipped on its own:
    # in the global clip (critic_max_grad_norm unset) the critic's gradient norm would still scale the actor's step.
    p = policy(seed=4, critic_trunk=critic_trunk, critic_max_grad_norm=1.0, target_kl=1e3, **changes)
    p.update(rollout(p, seed=4))
    groups = p.network.parameter_groups()
    flat = lambda ps: torch.cat([q.detach().flatten().clone() for q in ps])  # noqa: E731
    return flat([q for name, ps in groups.items() if name not in ("critic", "q") for q in ps]), flat(groups["critic"])


def test_with_an_own_trunk_the_value_loss_moves_no_actor_parameter_in_an_update() -> None:
    actor, critic = _actor_and_critic_after_an_update("own", value_coef=1.0)
    actor_other, critic_other = _actor_and_critic_after_an_update("own", value_coef=0.25)
    assert torch.equal(actor, actor_other) and not torch.equal(critic, critic_other)
    # And the policy's entropy bonus moves no critic parameter.
    actor_more, critic_more = _actor_and_critic_after_an_update("own", entropy_coef=0.5)
    assert torch.equal(critic, critic_more) and not torch.equal(actor, actor_more)
    # Shared: the value loss trains the trunk the actor reads.
    shared, _ = _actor_and_critic_after_an_update("shared", value_coef=1.0)
    shared_other, _ = _actor_and_critic_after_an_update("shared", value_coef=0.25)
    assert not torch.equal(shared, shared_other)


# --------------------------------------------------------------------------------------------- groups
@pytest.mark.parametrize("critic_trunk", ["shared", "own"])
def test_the_groups_partition_every_parameter(critic_trunk: str) -> None:
    net = _net(critic_trunk)
    groups = net.parameter_groups()
    listed = [id(p) for ps in groups.values() for p in ps]
    assert len(listed) == len(set(listed))  # no parameter in two groups
    assert set(listed) == _ids(net.parameters())  # none missing
    assert set(groups) == {"trunk", *HEADS, "critic", "q"}


def test_the_own_trunk_is_in_the_critic_group_its_learning_rate_decay_and_clip() -> None:
    p = policy(critic_trunk="own", critic_lr=1e-4, critic_weight_decay=0.01, critic_max_grad_norm=0.5)
    net = p.network
    own = _ids([*net.critic_embedding.parameters(), *net.critic_feature_net.parameters()])
    critic = _ids(net.parameter_groups()["critic"])
    assert own and own <= critic and critic == own | _ids(net.critic.parameters())
    assert not own & _ids(net.parameter_groups()["trunk"])
    actor_group, critic_group = p.optimizer.param_groups
    assert _ids(critic_group["params"]) == critic
    assert critic_group["lr"] == 1e-4 and critic_group["weight_decay"] == 0.01
    assert not own & _ids(actor_group["params"])
    assert _ids(p._updater.critic_params) == critic and not critic & _ids(p._updater.main_params)
    assert p.update(rollout(p))["grad_norm/critic"] > 0.0


def test_the_own_critic_has_the_documented_widths_on_its_own_features(monkeypatch) -> None:
    monkeypatch.setattr(torch.nn.init, "orthogonal_", lambda tensor, gain=1.0: tensor)  # widths only: skip slow QRs
    widths = lambda seq: [(m.in_features, m.out_features) for m in seq if isinstance(m, nn.Linear)]  # noqa: E731
    cfg = PPOV2Options(critic_trunk="own")
    net = PolicyNetwork(obs_dim=100, n_slots=3, n_blueprints=8, head_sizes=SIZES, feature_dim=cfg.feature_dim,
                        lstm_dim=cfg.lstm_dim, blueprint_embed_dim=cfg.blueprint_embed_dim, critic_trunk="own")
    assert widths(net.critic_feature_net) == [(100 + 3 * 4, 512)]
    assert sum(isinstance(m, nn.LayerNorm) for m in net.critic_feature_net) == 1
    assert widths(net.critic) == [(512, 256), (256, 128), (128, 64), (64, 1)]
    # Its input is feature_dim wide, not lstm_dim, and the hidden layers keep MIN_CRITIC_WIDTH.
    small = _net("own", feature_dim=12, lstm_dim=40)
    assert widths(small.critic) == [(12, MIN_CRITIC_WIDTH), (MIN_CRITIC_WIDTH, MIN_CRITIC_WIDTH),
                                    (MIN_CRITIC_WIDTH, MIN_CRITIC_WIDTH), (MIN_CRITIC_WIDTH, 1)]


# ---------------------------------------------------------------------------------------------- replay
def test_own_critic_unroll_equals_stepping_one_step_at_a_time() -> None:
    net = _net("own")
    features, blueprints, reset_before = _inputs(seed=1)
    gen = torch.Generator().manual_seed(2)
    start = (torch.randn(1, B, 24, generator=gen), torch.randn(1, B, 24, generator=gen))
    unrolled, final = net.unroll(features, blueprints, start, reset_before, segment_starts(reset_before))
    state, values, logits = start, [], []
    for t in range(T):
        keep = (~reset_before[t]).float().view(1, -1, 1)
        state = (state[0] * keep, state[1] * keep)
        out, state = net.step(features[t], blueprints[t], state)
        values.append(out.value)
        logits.append(out.logits["op"])
    assert unrolled.value.dtype == torch.float32 and unrolled.value.shape == (T, B)
    torch.testing.assert_close(unrolled.value, torch.stack(values), rtol=0.0, atol=1e-5)
    torch.testing.assert_close(unrolled.logits["op"], torch.stack(logits), rtol=0.0, atol=1e-5)
    torch.testing.assert_close(final[0], state[0], rtol=0.0, atol=1e-5)
    # The own critic has no memory: the recurrent state does not move the value.
    other, _ = net.step(features[0], blueprints[0], (start[0] * 5.0, start[1] * 5.0))
    first, _ = net.step(features[0], blueprints[0], start)
    torch.testing.assert_close(other.value, first.value, rtol=0.0, atol=0.0)


def test_the_policy_replays_its_own_critics_stored_values() -> None:
    p = policy(critic_trunk="own")
    data = rollout(p)
    inputs = prepare_inputs(data, p.layout, p.options.gamma, p.options.gae_lambda, p.device)
    torch.testing.assert_close(p._updater.evaluate_all(inputs).values, inputs.old_values, rtol=0.0, atol=1e-5)


# ----------------------------------------------------------------------------------------- checkpoints
def test_the_shared_network_has_exactly_the_keys_of_earlier_checkpoints() -> None:
    assert list(policy().network.state_dict()) == SHARED_KEYS
    assert list(policy(critic_trunk="shared").network.state_dict()) == SHARED_KEYS
    assert sorted(policy(critic_trunk="own").network.state_dict()) == sorted(SHARED_KEYS + OWN_EXTRA_KEYS)


def test_an_own_critic_checkpoint_round_trip_resumes_exactly() -> None:
    a = policy(seed=1, critic_trunk="own", critic_max_grad_norm=0.5)
    a.update(rollout(a, seed=1))  # optimiser moments and normaliser statistics are non-trivial now
    b = policy(seed=7, critic_trunk="own", critic_max_grad_norm=0.5)
    b.load_state_dict(round_trip(a.state_dict()))
    assert_continues_identically(a, b)


def test_a_state_saved_with_the_other_critic_trunk_is_refused_with_the_option_named() -> None:
    shared, own = policy(), policy(critic_trunk="own")
    with pytest.raises(ValueError, match="critic_trunk='shared'"):
        own.load_state_dict(round_trip(shared.state_dict()))
    with pytest.raises(ValueError, match="critic_trunk='own'"):
        shared.load_state_dict(round_trip(own.state_dict()))


# ------------------------------------------------------------------------------------------------ options
def test_an_unknown_critic_trunk_is_rejected_with_the_option_named() -> None:
    assert PPOV2Options().critic_trunk == "shared"
    with pytest.raises(ValueError, match=r"critic_trunk: must be one of shared, own \(got 'separate'\)"):
        PPOV2Options(critic_trunk="separate")
    with pytest.raises(ConfigError) as caught:
        structure_options(SPEC, {"critic_trunk": "separate"}, "policy.options", source="run.toml")
    (problem,) = caught.value.problems
    assert problem.key_path == "policy.options.critic_trunk" and "shared, own" in problem.message
    with pytest.raises(ValueError, match="critic_trunk"):
        _net("separate")
