"""Invariant 10: GAE never bootstraps across `done`, bootstraps with V(s') on `truncated`, and keeps
envs apart. Checked against a scalar reference and by perturbation."""

import torch
from hypothesis import given, strategies as st

from esper_core.rl.advantages import gae
from support.strategies import generator


def reference_gae(rewards, values, dones, truncated, bootstrap, last_value, gamma, lam):
    """One env, plain Python: the textbook recursion with episode boundaries."""
    advantages = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        if dones[t]:
            next_value, running = 0.0, 0.0
        elif truncated[t]:
            next_value, running = bootstrap[t], 0.0
        else:
            next_value = values[t + 1] if t + 1 < len(rewards) else last_value
        running = rewards[t] + gamma * next_value - values[t] + gamma * lam * running
        advantages[t] = running
    return advantages


@st.composite
def gae_cases(draw):
    n_steps, n_envs = draw(st.integers(1, 9)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = generator(seed)
    boundary_rate = draw(st.sampled_from([0.0, 0.2, 0.5]))
    return dict(
        rewards=torch.randn(n_steps, n_envs, generator=g),
        values=torch.randn(n_steps, n_envs, generator=g),
        dones=torch.rand(n_steps, n_envs, generator=g) < boundary_rate,
        truncated=torch.rand(n_steps, n_envs, generator=g) < boundary_rate,
        bootstrap_values=torch.randn(n_steps, n_envs, generator=g),
        last_values=torch.randn(n_envs, generator=g),
        gamma=draw(st.sampled_from([0.9, 0.995, 1.0])),
        lam=draw(st.sampled_from([0.0, 0.95, 1.0])),
    )


@given(gae_cases())
def test_gae_matches_the_reference_recursion(case):
    advantages, returns = gae(**case)
    for env in range(case["rewards"].shape[1]):
        column = {k: case[k][:, env].tolist() for k in ("rewards", "values", "dones", "truncated", "bootstrap_values")}
        expected = reference_gae(
            column["rewards"], column["values"], column["dones"], column["truncated"], column["bootstrap_values"],
            case["last_values"][env].item(), case["gamma"], case["lam"],
        )
        assert torch.allclose(advantages[:, env], torch.tensor(expected), atol=1e-4)
    assert torch.allclose(returns, advantages + case["values"])


@given(gae_cases(), st.data())
def test_nothing_flows_back_across_an_episode_boundary(case, data):
    n_steps, n_envs = case["rewards"].shape
    t = data.draw(st.integers(0, n_steps - 1))
    env = data.draw(st.integers(0, n_envs - 1))
    boundary = data.draw(st.sampled_from(["done", "truncated"]))
    case["dones"][t, env] = boundary == "done"
    case["truncated"][t, env] = boundary == "truncated"
    before, _ = gae(**case)
    perturbed = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in case.items()}
    noise = torch.randn(n_steps, generator=generator(t)) * 100
    perturbed["rewards"][t + 1 :, env] += noise[t + 1 :]
    perturbed["values"][t + 1 :, env] += noise[t + 1 :]
    perturbed["last_values"][env] += 100.0
    after, _ = gae(**perturbed)
    assert torch.equal(before[: t + 1, env], after[: t + 1, env])


@given(gae_cases(), st.data())
def test_done_ignores_and_truncated_uses_the_bootstrap_value(case, data):
    n_steps, n_envs = case["rewards"].shape
    t, env = data.draw(st.integers(0, n_steps - 1)), data.draw(st.integers(0, n_envs - 1))
    gamma = case["gamma"]
    for done in (True, False):
        case["dones"][t, env], case["truncated"][t, env] = done, not done
        base, _ = gae(**case)
        shifted = dict(case, bootstrap_values=case["bootstrap_values"].clone())
        shifted["bootstrap_values"][t, env] += 1.0
        moved, _ = gae(**shifted)
        change = (moved[t, env] - base[t, env]).item()
        assert abs(change - (0.0 if done else gamma)) < 1e-5, (done, change)


@given(gae_cases(), st.data())
def test_envs_never_mix(case, data):
    n_steps, n_envs = case["rewards"].shape
    before, _ = gae(**case)
    env = data.draw(st.integers(0, n_envs - 1))
    perturbed = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in case.items()}
    perturbed["rewards"][:, env] += 10.0
    perturbed["values"][:, env] -= 3.0
    perturbed["bootstrap_values"][:, env] += 7.0
    perturbed["last_values"][env] += 5.0
    perturbed["dones"][:, env] = ~perturbed["dones"][:, env]
    after, _ = gae(**perturbed)
    others = [e for e in range(n_envs) if e != env]
    assert torch.equal(before[:, others], after[:, others])
    permutation = torch.randperm(n_envs, generator=generator(n_envs))
    permuted = {k: (v[..., permutation] if isinstance(v, torch.Tensor) else v) for k, v in case.items()}
    assert torch.equal(gae(**permuted)[0], before[:, permutation])
