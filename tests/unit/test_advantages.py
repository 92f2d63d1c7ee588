"""GAE on hand-computed cases, per-head advantages, joint log-ratio, clipping, normalisation."""

import pytest
import torch

from esper_core.rl.advantages import (
    clipped_surrogate,
    gae,
    joint_log_ratio,
    normalise_advantages,
    per_head_advantages,
    relevant_head_means,
)
from esper_core.ops import HEADS, Op


def column(*values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype).unsqueeze(1)


def test_gae_by_hand_with_a_done_in_the_middle():
    rewards, values = column(1.0, 2.0, 3.0), column(0.5, 1.0, 1.5)
    dones = column(False, True, False, dtype=torch.bool)
    truncated = column(False, False, False, dtype=torch.bool)
    gamma, lam = 0.9, 0.8
    adv, ret = gae(rewards, values, dones, truncated, torch.zeros(3, 1), torch.tensor([2.0]), gamma, lam)
    d2 = 3.0 + gamma * 2.0 - 1.5
    d1 = 2.0 - 1.0  # terminal: no bootstrap, nothing from step 2
    d0 = 1.0 + gamma * 1.0 - 0.5
    expected = [d0 + gamma * lam * d1, d1, d2]
    assert adv[:, 0].tolist() == pytest.approx(expected)
    assert ret[:, 0].tolist() == pytest.approx([e + v for e, v in zip(expected, [0.5, 1.0, 1.5])])


def test_gae_bootstraps_a_truncated_step_with_v_of_the_cut_off_state():
    rewards, values = column(1.0, 1.0), column(0.0, 5.0)
    truncated = column(True, False, dtype=torch.bool)
    dones = column(False, False, dtype=torch.bool)
    adv, _ = gae(rewards, values, dones, truncated, column(10.0, 0.0), torch.tensor([0.0]), 0.5, 1.0)
    assert adv[0, 0].item() == pytest.approx(1.0 + 0.5 * 10.0)  # V(s') = 10, not the next episode's 5


def test_gae_rejects_misshapen_inputs():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="last_values must be \\[E=2\\]"):
        gae(x, x, x.bool(), x.bool(), x, torch.zeros(3), 0.9, 0.9)
    with pytest.raises(ValueError, match="dones has shape"):
        gae(x, x, x[:2].bool(), x.bool(), x, torch.zeros(2), 0.9, 0.9)


def test_per_head_advantages_follow_the_causal_table():
    adv = torch.tensor([2.0, -3.0, 0.5])
    ops = torch.tensor([int(Op.WAIT), int(Op.ADVANCE), int(Op.GERMINATE)])
    per_head = per_head_advantages(adv, ops)
    assert per_head.tolist() == [
        [2.0, 0, 0, 0, 0, 0, 0, 0],
        [-3.0, -3.0, 0, 0, 0, 0, 0, 0],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0, 0],
    ]


def test_joint_log_ratio_and_whole_ratio_clipping():
    new = torch.full((1, len(HEADS)), 0.1)
    old = torch.zeros(1, len(HEADS))
    joint = joint_log_ratio(new, old, torch.tensor([int(Op.PRUNE)]))  # op, slot, speed, curve
    assert joint.item() == pytest.approx(0.4)
    objective = clipped_surrogate(joint, torch.tensor([1.0]), 0.2)
    assert objective.item() == pytest.approx(1.2)  # exp(0.4) = 1.49 clipped as a whole


def test_normalise_advantages():
    adv = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    normalised = normalise_advantages(adv)
    assert normalised.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert normalised.std().item() == pytest.approx(1.0, abs=1e-5)
    assert normalise_advantages(torch.tensor([4.0])).tolist() == [0.0]


def test_relevant_head_means_are_conditional_on_relevance():
    per_head = torch.arange(3 * len(HEADS), dtype=torch.float32).reshape(3, len(HEADS))
    ops = torch.tensor([int(Op.WAIT), int(Op.GERMINATE), int(Op.GERMINATE)])
    means, counts = relevant_head_means(per_head, ops)
    assert counts.tolist() == [3, 2, 2, 2, 2, 2, 0, 0]
    assert means[0].item() == pytest.approx(per_head[:, 0].mean().item())
    assert means[2].item() == pytest.approx(per_head[1:, 2].mean().item())
    assert means[6].item() == 0.0
