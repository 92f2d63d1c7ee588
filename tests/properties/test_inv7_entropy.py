"""Invariant 7: normalised entropy lies in [0, 1] and is 0 with a single valid action; the entropy
term gives every head's parameters gradient, even in a batch where the head is never relevant."""

import torch
from hypothesis import given, strategies as st

from esper_core.rl.distributions import MaskedCategorical
from esper_core.rl.masks import head_relevance
from esper_core.ops import HEADS, Op
from esper_core.rl.sampling import evaluate_actions
from support.strategies import action_spaces, bool_masks, floors_for, generator, head_floors, logit_tensors


@st.composite
def entropy_cases(draw):
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 9)))
    return draw(logit_tensors(shape)), draw(bool_masks(shape)), draw(floors_for(shape[-1]))


@given(entropy_cases())
def test_normalised_entropy_in_unit_interval_and_zero_for_single_choice(case):
    logits, mask, floor = case
    entropy = MaskedCategorical(logits, mask, floor).entropy()
    assert entropy.shape == mask.shape[:-1]
    assert ((entropy >= 0) & (entropy <= 1)).all()
    single = mask.sum(-1) == 1
    assert (entropy[single] == 0).all()


@given(st.integers(2, 9), st.floats(0.0, 1.0))
def test_uniform_distribution_has_entropy_one(width, floor):
    entropy = MaskedCategorical(torch.zeros(1, width), torch.ones(1, width, dtype=torch.bool), floor / width).entropy()
    assert abs(entropy.item() - 1.0) < 1e-5


class TinyPolicy(torch.nn.Module):
    """One linear layer per head on a shared input: the smallest policy with separate head parameters."""

    def __init__(self, obs_dim: int, head_sizes: dict[str, int]) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleDict({h: torch.nn.Linear(obs_dim, n) for h, n in head_sizes.items()})

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {h: layer(obs) for h, layer in self.heads.items()}


@given(action_spaces(), st.sampled_from([0.1, 1.0, 5.0]), st.integers(0, 2**31 - 1), st.data())
def test_entropy_term_reaches_heads_that_are_never_relevant(space, obs_scale, seed, data):
    sizes = space.head_sizes
    n = 6
    torch.manual_seed(seed)
    policy = TinyPolicy(4, sizes)
    obs = torch.randn(n, 4, generator=generator(seed)) * obs_scale
    masks = {h: data.draw(bool_masks((n, sizes[h]), min_valid=min(2, sizes[h]))) for h in HEADS}
    floors = data.draw(head_floors(sizes, strict=True))
    ops = torch.full((n,), int(Op.WAIT))  # every head but `op` is irrelevant on every step
    actions = torch.stack([masks[h].long().argmax(-1) for h in HEADS], dim=-1)
    actions[:, 0] = ops
    masks["op"][:, Op.WAIT] = True
    assert not head_relevance(ops)[:, 1:].any()
    _, entropy = evaluate_actions(policy(obs), actions, masks, floors)
    entropy.mean(0).sum().backward()  # the entropy bonus: every head, every step, relevant or not
    for h in HEADS:
        grad = policy.heads[h].weight.grad
        if sizes[h] >= 2:
            assert grad is not None and grad.abs().sum() > 0, f"head {h} got no entropy gradient"
