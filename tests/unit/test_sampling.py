"""sample_actions / evaluate_actions: conditional sampling order, stored masks, shapes and errors."""

import pytest
import torch

from esper_core.rl.actions import ActionSpace
from esper_core.config import LifecycleConfig
from esper_core.rl.masks import mask_inputs_from_tensors
from esper_core.ops import HEADS, Op
from esper_core.rl.sampling import evaluate_actions, sample_actions
from esper_core.stages import SeedStage as S

SPACE = ActionSpace.build(
    slots=["a", "b", "c"],
    blueprints=["light", "mlp_only", "heavy"],
    blueprint_topologies={"light": {"cnn"}, "mlp_only": {"mlp"}, "heavy": {"cnn"}},
    styles=["add", "gate"],
    tempos=[3, 5, 8],
    alpha_targets=[0.5, 1.0],
    topology="cnn",
)
LIFECYCLE = LifecycleConfig(min_training_epochs=2, min_prune_age=3, max_seeds=2)


def inputs_for(stages, epochs=None, ages=None):
    stage = torch.tensor(stages)
    zeros = torch.zeros_like(stage)
    return mask_inputs_from_tensors(
        stage,
        zeros if epochs is None else torch.tensor(epochs),
        zeros if ages is None else torch.tensor(ages),
        torch.ones_like(stage, dtype=torch.bool),
        SPACE,
        LIFECYCLE,
    )


def logits_preferring(n_envs, **preferred):
    logits = {h: torch.zeros(n_envs, n) for h, n in SPACE.head_sizes.items()}
    for head, index in preferred.items():
        logits[head][:, index] = 20.0
    return logits


def test_deterministic_sampling_follows_the_masks_not_the_raw_logits():
    # Env 0 can germinate only at slot c; env 1 cannot germinate at all (a seed is training).
    inputs = inputs_for(
        [[S.HOLDING, S.FOSSILIZED, S.DORMANT], [S.TRAINING, S.DORMANT, S.DORMANT]], ages=[[5, 5, 0], [1, 0, 0]]
    )
    logits = logits_preferring(2, op=int(Op.GERMINATE), slot=0, blueprint=3)
    logits["blueprint"][:, 0] = 40.0  # noop preferred, but never valid for GERMINATE
    logits["blueprint"][:, 2] = 30.0  # mlp_only does not fit a cnn slot
    sampled = sample_actions(logits, inputs, floors={}, deterministic=True)
    germinate, wait = SPACE.decode_batch(sampled.actions)
    assert germinate.op == Op.GERMINATE and germinate.slot == "c" and germinate.blueprint == "heavy"
    assert wait.op == Op.WAIT
    assert sampled.actions.dtype == torch.long and sampled.actions.shape == (2, len(HEADS))
    assert sampled.log_probs.shape == sampled.entropy.shape == (2, len(HEADS))


def test_stochastic_sampling_is_reproducible_and_evaluates_to_the_same_log_probs():
    inputs = inputs_for([[S.DORMANT, S.HOLDING, S.BLENDING]] * 5, ages=[[0, 9, 9]] * 5)
    logits = {
        h: torch.randn(5, n, generator=torch.Generator().manual_seed(i))
        for i, (h, n) in enumerate(SPACE.head_sizes.items())
    }
    floors = {"op": 0.05, "blueprint": 0.1}
    first = sample_actions(logits, inputs, floors, False, torch.Generator().manual_seed(3))
    again = sample_actions(logits, inputs, floors, False, torch.Generator().manual_seed(3))
    assert torch.equal(first.actions, again.actions)
    log_probs, entropy = evaluate_actions(logits, first.actions, first.masks, floors)
    assert torch.allclose(log_probs, first.log_probs) and torch.allclose(entropy, first.entropy)


def test_evaluate_actions_handles_time_major_batches_and_gives_gradients():
    inputs = inputs_for([[S.DORMANT, S.HOLDING, S.BLENDING]] * 2, ages=[[0, 9, 9]] * 2)
    steps = [
        sample_actions(logits_preferring(2), inputs, {}, False, torch.Generator().manual_seed(t)) for t in range(3)
    ]
    actions = torch.stack([s.actions for s in steps])
    masks = {h: torch.stack([s.masks[h] for s in steps]) for h in HEADS}
    logits = {h: torch.zeros(3, 2, n, requires_grad=True) for h, n in SPACE.head_sizes.items()}
    log_probs, entropy = evaluate_actions(logits, actions, masks, {"op": 0.02})
    assert log_probs.shape == entropy.shape == (3, 2, len(HEADS))
    (log_probs.sum() - entropy.sum()).backward()
    assert all(torch.isfinite(logits[h].grad).all() for h in HEADS)


def test_missing_or_misshapen_logits_are_reported_by_head():
    inputs = inputs_for([[S.DORMANT] * 3])
    logits = logits_preferring(1)
    del logits["tempo"]
    with pytest.raises(ValueError, match="missing head\\(s\\) \\['tempo'\\]"):
        sample_actions(logits, inputs, {}, False)
    logits = logits_preferring(1)
    logits["style"] = torch.zeros(1, 5)
    with pytest.raises(ValueError, match="'style': \\(5, 2\\)"):
        sample_actions(logits, inputs, {}, False)
    with pytest.raises(ValueError, match="stored masks are missing"):
        evaluate_actions(logits_preferring(1), torch.zeros(1, len(HEADS), dtype=torch.long), {}, {})
