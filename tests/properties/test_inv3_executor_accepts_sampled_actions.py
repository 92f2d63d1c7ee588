"""Invariant 3, end to end: actions sampled from the masks of a real MorphogeneticModel's state are
executed by it as sampled: it never raises, and every slot op takes effect on the chosen slot. On each
topology's tiny host, with a blueprint of another topology in the head (masked out, never sampled)."""

import torch
from hypothesis import given, strategies as st

from esper_core.rl.actions import ActionSpace
from esper_core.rl.masks import mask_inputs_from_observations
from esper_core.ops import ALPHA_CURVES, ALPHA_SPEEDS, HEADS, Op
from esper_core.records import EnvObservation
from esper_core.rl.sampling import sample_actions
from support import lifecycle_strategies
from support.topologies import Topology, by_topology
from support.strategies import lifecycle_configs

STEPS = 14
#: Ops that always cause a stage transition on their slot when executed.
TRANSITION_OPS = {Op.GERMINATE, Op.ADVANCE, Op.PRUNE, Op.FOSSILIZE}
#: Op logit bias (in Op order) that walks seeds through the whole lifecycle rather than pruning them.
GROW_BIAS = torch.tensor([[0.0, 4.0, -2.0, -6.0, 8.0, 8.0]])

def observe(model, space) -> EnvObservation:
    return EnvObservation(
        epoch=0, episode_length=STEPS, topology=space.topology, train_loss=1.0, train_acc=0.5, val_loss=1.0,
        val_acc=0.5, val_acc_delta=0.0, val_loss_delta=0.0, best_val_acc=0.5, plateau_epochs=0,
        host_params=model.host_param_count(), seed_params=model.seed_param_count(), param_budget_used=0.0,
        last_op=Op.WAIT, last_action_ok=True, slots=model.summary(),
    )

@by_topology
@given(
    lifecycle_configs(),
    st.integers(0, 2**31 - 1),
    st.sampled_from([0.5, 3.0, 30.0]),
    st.floats(0.1, 1.0 / len(Op)),
    st.booleans(),
)
def test_sampled_actions_execute_as_sampled(topology: Topology, lifecycle, seed, logit_scale, op_floor, grow):
    """``grow`` biases the op head toward the lifecycle's far end (advance, fossilize) so that rare
    paths such as HOLDING -> FOSSILIZED are exercised too."""
    blueprints = {**topology.blueprints, "mlp_only": lifecycle_strategies.BAD_BLUEPRINTS["mlp_only"]}
    model = topology.model(lifecycle, seed=seed, blueprints=blueprints)
    space = ActionSpace.build(
        slots=model.slot_names,
        blueprints=list(blueprints),
        blueprint_topologies={name: spec.topologies for name, spec in blueprints.items()},
        styles=list(topology.styles),
        tempos=[1, 2],
        alpha_targets=[0.5, 1.0],
        alpha_speeds=tuple(ALPHA_SPEEDS),
        alpha_curves=ALPHA_CURVES,
        topology=model.topology,
    )
    generator = torch.Generator().manual_seed(seed)
    floors = {"op": op_floor, "slot": 0.1, "blueprint": 0.1}
    for _ in range(STEPS):
        inputs = mask_inputs_from_observations([observe(model, space)], space, lifecycle)
        logits = {h: torch.randn(1, n, generator=generator) * logit_scale for h, n in space.head_sizes.items()}
        if grow:
            logits["op"] = logits["op"] + GROW_BIAS
        sampled = sample_actions(logits, inputs, floors, False, generator)
        action = space.decode(sampled.actions[0])
        stage_before = {s.name: s.stage for s in model.summary()}
        transitions = model.execute(action)  # a LifecycleError here is the failure this test looks for
        if action.op in TRANSITION_OPS:
            assert [t.slot for t in transitions if t.from_stage == stage_before[action.slot]] == [action.slot]
        assert torch.isfinite(sampled.log_probs).all()
        model.step_epoch()
