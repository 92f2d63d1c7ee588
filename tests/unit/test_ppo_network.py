"""ppo_v2 network: shapes, initialisation, forget-gate bias, detached Q, sequence replay."""

from __future__ import annotations

import logging

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper_policies.ppo_v2 import PPOV2Options
from esper_core.ops import HEADS, Op
from esper_policies.ppo_v2.network import MIN_CRITIC_WIDTH, OUTPUT_GAIN, PolicyNetwork, segment_starts
from support.ppo_builders import policy
from support.slot_game import game_context, game_space

SIZES = game_space().head_sizes


def _net(feature_dim: int = 16, lstm_dim: int = 16) -> PolicyNetwork:
    torch.manual_seed(0)
    return PolicyNetwork(obs_dim=10, n_slots=2, n_blueprints=4, head_sizes=SIZES, feature_dim=feature_dim,
                         lstm_dim=lstm_dim, blueprint_embed_dim=3)


def _inputs(t: int, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(t, b, 10, generator=gen), torch.randint(0, 4, (t, b, 2), generator=gen)


def test_step_output_shapes() -> None:
    net = _net()
    features, blueprints = _inputs(1, 5)
    out, (h, c) = net.step(features[0], blueprints[0], net.initial_state(5))
    assert {h_: tuple(x.shape) for h_, x in out.logits.items()} == {h_: (5, SIZES[h_]) for h_ in HEADS}
    assert out.value.shape == (5,) and out.q.shape == (5, len(Op))
    assert h.shape == c.shape == (1, 5, 16)


def test_default_widths_match_the_architecture(monkeypatch) -> None:
    monkeypatch.setattr(torch.nn.init, "orthogonal_", lambda tensor, gain=1.0: tensor)  # widths only: skip slow QRs
    cfg = PPOV2Options()
    net = PolicyNetwork(obs_dim=100, n_slots=3, n_blueprints=8, head_sizes=SIZES, feature_dim=cfg.feature_dim,
                        lstm_dim=cfg.lstm_dim, blueprint_embed_dim=cfg.blueprint_embed_dim)
    linear_widths = lambda seq: [(m.in_features, m.out_features) for m in seq if isinstance(m, torch.nn.Linear)]  # noqa: E731
    assert linear_widths(net.feature_net) == [(100 + 3 * 4, 512)]
    assert net.lstm.input_size == 512 and net.lstm.hidden_size == 512
    assert linear_widths(net.heads["op"]) == [(512, 256), (256, len(Op))]
    assert linear_widths(net.heads["blueprint"]) == [(512, 512), (512, 128), (128, SIZES["blueprint"])]
    assert linear_widths(net.critic) == [(512, 256), (256, 128), (128, 64), (64, 1)]
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in net.critic) == 3


def test_orthogonal_init_with_gains_and_zero_biases() -> None:
    net = _net(feature_dim=8, lstm_dim=16)
    hidden = net.heads["op"][0].weight  # 16 -> 8: rows orthogonal, gain sqrt 2
    assert torch.allclose(hidden @ hidden.T, 2.0 * torch.eye(8), atol=1e-5)
    for module in (*(net.heads[h][-1] for h in HEADS), net.critic[-1], net.q_head[-1]):
        w = module.weight
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, OUTPUT_GAIN**2 * torch.eye(gram.shape[0]), atol=1e-7)
        assert torch.equal(module.bias, torch.zeros_like(module.bias))


@given(lstm_dim=st.integers(2, 40), seed=st.integers(0, 2**16))
@settings(max_examples=25)
def test_the_critic_tells_states_apart_at_any_width(lstm_dim: int, seed: int) -> None:
    """Every hidden layer of the critic is LayerNorm'd; at lstm_dim 16 its last one was 2 wide, which maps every
    input to one of two patterns, so the critic could output at most two values (EV 0 in every small test)."""
    torch.manual_seed(seed)
    net = PolicyNetwork(obs_dim=10, n_slots=2, n_blueprints=4, head_sizes=SIZES, feature_dim=8, lstm_dim=lstm_dim)
    hidden = [m.normalized_shape[0] for m in net.critic if isinstance(m, torch.nn.LayerNorm)]
    assert len(hidden) == 3 and min(hidden) >= MIN_CRITIC_WIDTH
    trunk = torch.randn(64, lstm_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        values = net.critic(trunk).squeeze(-1)
    assert values.unique().numel() >= 32, values
    assert float(values.std()) > 1e-4 * OUTPUT_GAIN


def test_lstm_forget_gate_bias_is_one() -> None:
    net = _net(lstm_dim=16)
    total = net.lstm.bias_ih_l0 + net.lstm.bias_hh_l0
    gates = total.detach().view(4, 16)  # input, forget, cell, output
    assert torch.equal(gates[1], torch.ones(16))
    assert torch.equal(gates[[0, 2, 3]], torch.zeros(3, 16))


def test_q_head_reads_a_detached_trunk() -> None:
    net = _net()
    features, blueprints = _inputs(1, 3)
    out, _ = net.step(features[0], blueprints[0], net.initial_state(3))
    out.q.sum().backward()
    trunk = net.parameter_groups()["trunk"]
    assert all(p.grad is None or not p.grad.any() for p in trunk)
    assert any(p.grad is not None and p.grad.any() for p in net.q_head.parameters())


def test_unroll_with_resets_equals_stepping() -> None:
    net = _net()
    features, blueprints = _inputs(6, 3, seed=1)
    reset_before = torch.zeros(6, 3, dtype=torch.bool)
    reset_before[2, 1] = reset_before[4, 0] = True
    gen = torch.Generator().manual_seed(2)
    start = (torch.randn(1, 3, 16, generator=gen), torch.randn(1, 3, 16, generator=gen))
    unrolled, final = net.unroll(features, blueprints, start, reset_before, segment_starts(reset_before))
    assert segment_starts(reset_before) == [0, 2, 4]
    state, values = start, []
    for t in range(6):
        keep = (~reset_before[t]).float().view(1, -1, 1)
        state = (state[0] * keep, state[1] * keep)
        out, state = net.step(features[t], blueprints[t], state)
        values.append(out.value)
    assert torch.allclose(unrolled.value, torch.stack(values), atol=1e-5)
    assert torch.allclose(final[0], state[0], atol=1e-5)


def test_policy_logs_its_parameter_count(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="esper_policies.ppo_v2.policy"):
        p = policy()
    assert p.parameter_count == sum(q.numel() for q in p.network.parameters())
    assert f"{p.parameter_count} parameters" in caplog.text


def test_initialisation_is_deterministic_from_the_seed_and_ignores_global_rng() -> None:
    torch.manual_seed(123)
    a = policy(seed=5)
    torch.manual_seed(456)
    b = policy(seed=5)
    c = policy(seed=6)
    flat = lambda p: torch.cat([q.flatten() for q in p.network.parameters()])  # noqa: E731
    assert torch.equal(flat(a), flat(b)) and not torch.equal(flat(a), flat(c))
    assert game_context(1).space.head_sizes == SIZES
