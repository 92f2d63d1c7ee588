"""MorphogeneticModel: the lifecycle executor, seed placement, bookkeeping and checkpoints."""

from __future__ import annotations

import copy
import io
import json

import attrs
import pytest
import torch
from torch import nn

from esper_core.config import LifecycleConfig
from esper_core.growth.lifecycle import BadOpArgument, GateClosed, LifecycleError, SeedShapeError
from esper_core.growth.model import MorphogeneticModel
from esper_core.ops import Op
from esper_core.records import DecodedAction, StageTransition
from esper_core.growth.slot import SeedSlot
from esper_core.stages import SeedStage as S
from support.lifecycle_strategies import (
    BAD_BLUEPRINTS,
    BLUEPRINTS,
    FAST_LIFECYCLE,
    STYLES,
    TRAINING,
    TinyHost,
    batch,
    make_model,
    train_step,
)
from support.topologies import CNN, Topology, by_topology


def stage(model: MorphogeneticModel, slot: str) -> S:
    return model.slots[slot].stage


def to_holding(
    model: MorphogeneticModel, slot: str = "early", tempo: int = 2, target: float = 0.7, topology: Topology = CNN
) -> None:
    """Germinate the topology's random seed with its last style (CNN: ``conv``, ``gated``) and walk to HOLDING."""
    x, y = topology.batch()
    model.germinate(slot, topology.random_blueprint, tuple(topology.styles)[-1], tempo, target)
    for _ in range(FAST_LIFECYCLE.min_training_epochs):
        train_step(model, x, y)
        model.step_epoch()
    model.advance(slot)
    for _ in range(tempo):
        train_step(model, x, y)
        model.step_epoch()
    model.advance(slot)
    assert stage(model, slot) == S.HOLDING


@by_topology
def test_installs_a_seed_slot_at_every_slot_point(topology: Topology) -> None:
    model = topology.model()
    assert model.slot_names == topology.slots
    assert all(isinstance(model.host.slots[name], SeedSlot) for name in model.slot_names)
    assert [s.stage for s in model.summary()] == [S.DORMANT, S.DORMANT]
    assert model.seed_param_count() == 0
    assert model.host_param_count() == sum(p.numel() for p in model.parameters())


def test_host_missing_a_declared_slot_is_an_error() -> None:
    host = TinyHost()
    del host.slots["late"]
    with pytest.raises(ValueError, match=r"\['late'\]"):
        MorphogeneticModel(host, BLUEPRINTS, STYLES, FAST_LIFECYCLE, TRAINING)


def test_bad_germinate_curve_in_config_is_named() -> None:
    with pytest.raises(ValueError, match="lifecycle.germinate_curve"):
        make_model(lifecycle=LifecycleConfig(germinate_curve="zigzag"))


@by_topology
@pytest.mark.parametrize("train_mode", [True, False])
def test_germination_is_function_preserving_bitwise(topology: Topology, train_mode: bool) -> None:
    model = topology.model()
    model.train(train_mode)
    x, _ = topology.batch()
    reference = copy.deepcopy(model)
    slot = topology.slots[0]
    transitions = model.germinate(slot, topology.random_blueprint, tuple(topology.styles)[0], 3, 1.0)
    assert transitions == [
        StageTransition(slot, S.DORMANT, S.GERMINATED, transitions[0].reason),
        StageTransition(slot, S.GERMINATED, S.TRAINING, transitions[1].reason),
    ]
    out, expected = model(x), reference(x)
    assert torch.equal(out.detach().view(torch.int32), expected.detach().view(torch.int32))
    summary = model.summary()[0]
    assert (summary.stage, summary.alpha, summary.alpha_target, summary.alpha_at_target) == (S.TRAINING, 0.0, 1.0, False)
    assert summary.seed_params == sum(p.numel() for p in model.slots[slot].seed_parameters()) > 0
    assert model.seed_param_count() == summary.seed_params
    assert model.slots[slot].seed.training is train_mode


def test_seeds_follow_the_hosts_dtype_and_channels_last_layout() -> None:
    model = make_model()
    model.host.to(dtype=torch.float64, memory_format=torch.channels_last)
    model.germinate("early", "conv", "add", 2, 0.5)
    weight = model.slots["early"].seed.inner.weight
    assert weight.dtype == torch.float64
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    x, _ = batch()
    model(x.double().contiguous(memory_format=torch.channels_last)).sum().backward()


def snapshot(model: MorphogeneticModel) -> tuple:
    return (
        json.dumps(model.morphology(), sort_keys=True),
        {k: v.clone() for k, v in model.state_dict().items()},
        model.optimizer.layout(),
    )


def assert_unchanged(model: MorphogeneticModel, before: tuple) -> None:
    after = snapshot(model)
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1].keys() == before[1].keys()
    assert all(torch.equal(after[1][k], before[1][k]) for k in before[1])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m.germinate("nowhere", "conv", "add", 2, 0.5), BadOpArgument, "unknown slot 'nowhere'"),
        (lambda m: m.germinate("early", "nope", "add", 2, 0.5), BadOpArgument, "unknown blueprint 'nope'"),
        (lambda m: m.germinate("early", "conv", "nope", 2, 0.5), BadOpArgument, "unknown blend style 'nope'"),
        (lambda m: m.germinate("early", "mlp_only", "add", 2, 0.5), BadOpArgument, "topology 'cnn'"),
        (lambda m: m.germinate("early", "wrong_shape", "add", 2, 0.5), SeedShapeError, "keep"),
        (lambda m: m.germinate("early", "conv", "add", -1, 0.5), BadOpArgument, "tempo"),
        (lambda m: m.germinate("early", "conv", "add", 2, 1.5), BadOpArgument, "alpha_target"),
        (lambda m: m.advance("early"), GateClosed, "ADVANCE refused at slot 'early' \\(stage DORMANT\\)"),
        (lambda m: m.prune("early"), GateClosed, "PRUNE"),
        (lambda m: m.fossilize("late"), GateClosed, "FOSSILIZE applies only in HOLDING"),
        (lambda m: m.set_alpha_target("early", 0.5), GateClosed, "BLENDING or HOLDING"),
    ],
)
def test_illegal_calls_raise_and_change_nothing(call, error, match) -> None:
    model = make_model(blueprints={**BLUEPRINTS, **BAD_BLUEPRINTS})
    before = snapshot(model)
    with pytest.raises(error, match=match):
        call(model)
    assert_unchanged(model, before)
    assert issubclass(error, LifecycleError)


def _out_of_memory(*args: object) -> nn.Module:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB (a GPU shared with other runs)")


@pytest.mark.parametrize("part", ["blueprint", "blend_style"])
def test_running_out_of_memory_in_a_germination_is_not_the_plugin_s_contract_break(part) -> None:
    """The OOM propagates as it is (the run stops with its out-of-memory message) instead of a SeedShapeError
    naming the plugin, which the run would quarantine for good; the model is left as it was."""
    blueprints = {**BLUEPRINTS, "hungry": attrs.evolve(BLUEPRINTS["conv"], name="hungry", factory=_out_of_memory)}
    styles = {**STYLES, "hungry": attrs.evolve(STYLES["add"], name="hungry", factory=_out_of_memory)}
    model = MorphogeneticModel(TinyHost(), blueprints, styles, FAST_LIFECYCLE, TRAINING)
    before = snapshot(model)
    with pytest.raises(torch.OutOfMemoryError):
        if part == "blueprint":
            model.germinate("early", "hungry", "add", 2, 0.5)
        else:
            model.germinate("early", "conv", "hungry", 2, 0.5)
    assert_unchanged(model, before)


def test_gates_are_named_in_refusals() -> None:
    model = make_model(lifecycle=LifecycleConfig(min_training_epochs=2, min_prune_age=3, max_seeds=2))
    model.germinate("early", "conv", "add", 2, 0.5)
    with pytest.raises(GateClosed, match="min_training_epochs"):
        model.advance("early")
    with pytest.raises(GateClosed, match="min_prune_age"):
        model.prune("early")
    with pytest.raises(GateClosed, match="sequential_development: waiting for early=TRAINING"):
        model.germinate("late", "conv", "add", 2, 0.5)


def test_max_seeds_gate() -> None:
    model = make_model(lifecycle=LifecycleConfig(min_training_epochs=0, max_seeds=1))
    model.germinate("early", "conv", "add", 0, 0.5)
    model.advance("early")
    with pytest.raises(GateClosed, match="max_seeds"):
        model.germinate("late", "conv", "add", 0, 0.5)


def test_full_walk_to_fossil() -> None:
    model = make_model()
    host_params = model.host_param_count()
    x, y = batch()
    model.germinate("early", "conv", "gated", 2, 0.7)
    seed_params = model.seed_param_count()
    train_step(model, x, y)
    assert model.step_epoch() == []
    summary = model.summary()[0]
    assert (summary.epochs_in_stage, summary.seed_age) == (1, 1)
    assert model.advance("early") == [StageTransition("early", S.TRAINING, S.BLENDING, "min_training_epochs reached")]
    alphas = []
    for _ in range(2):
        alphas.append(model.summary()[0].alpha)
        with pytest.raises(GateClosed, match="blending_finished"):
            model.advance("early")
        train_step(model, x, y)
        model.step_epoch()
    alphas.append(model.summary()[0].alpha)
    assert alphas == pytest.approx([0.0, 0.35, 0.7]) and alphas[-1] == 0.7
    assert model.slots["early"].alpha.item() == pytest.approx(0.7)
    assert model.summary()[0].alpha_at_target
    assert [t.to_stage for t in model.advance("early")] == [S.HOLDING]
    assert [t.to_stage for t in model.fossilize("early")] == [S.FOSSILIZED]
    assert model.host_param_count() == host_params + seed_params
    assert model.seed_param_count() == 0
    assert model.optimizer.fossil_slots == ("early",)
    for call in (lambda: model.prune("early"), lambda: model.advance("early"), lambda: model.set_alpha_target("early", 1.0)):
        with pytest.raises(GateClosed):
            call()
    # the fossil keeps blending at its final alpha and keeps learning with the host
    before = model.slots["early"].seed.inner.weight.detach().clone()
    train_step(model, x, y)
    assert not torch.equal(before, model.slots["early"].seed.inner.weight)
    # and a new germination elsewhere is possible again
    assert len(model.germinate("late", "conv", "add", 2, 0.5)) == 2


def test_retarget_from_holding_goes_back_to_blending() -> None:
    model = make_model()
    to_holding(model)
    transitions = model.set_alpha_target("early", 1.0, "fast", "cosine")
    assert [(t.from_stage, t.to_stage) for t in transitions] == [(S.HOLDING, S.BLENDING)]
    assert model.summary()[0].alpha == pytest.approx(0.7) and not model.summary()[0].alpha_at_target
    model.step_epoch()
    model.step_epoch()
    assert model.summary()[0].alpha == 1.0 and model.summary()[0].alpha_at_target
    assert model.set_alpha_target("early", 0.5, "instant", "linear") == []  # BLENDING stays BLENDING
    assert model.summary()[0].alpha == 0.5


def test_instant_prune_still_serves_the_embargo() -> None:
    model = make_model()
    model.germinate("early", "conv", "add", 2, 0.5)
    for _ in range(FAST_LIFECYCLE.min_prune_age):
        model.step_epoch()
    [transition] = model.prune("early", "instant", "linear")
    assert transition.to_stage == S.PRUNED
    assert model.optimizer.seed_slots == ()
    assert all(not p.requires_grad for p in model.slots["early"].seed_parameters())
    seen = []
    for _ in range(4):
        seen.append([(t.from_stage, t.to_stage) for t in model.step_epoch()])
        if stage(model, "early") != S.DORMANT:
            with pytest.raises(GateClosed):
                model.germinate("early", "conv", "add", 2, 0.5)
    assert seen == [[(S.PRUNED, S.EMBARGOED)], [], [(S.EMBARGOED, S.RESETTING)], [(S.RESETTING, S.DORMANT)]]
    assert model.slots["early"].seed is None and model.summary()[0].seed_params == 0
    model.germinate("early", "conv", "add", 2, 0.5)


def test_force_prune_bypasses_the_age_gate_but_not_the_embargo() -> None:
    model = make_model()
    assert model.force_prune("early", "nothing there") == []
    model.germinate("early", "conv", "add", 2, 0.5)
    with pytest.raises(GateClosed, match="min_prune_age"):
        model.prune("early")
    [transition] = model.force_prune("early", "non-finite loss")
    assert (transition.to_stage, transition.reason) == (S.PRUNED, "fault: non-finite loss")
    assert model.optimizer.seed_slots == ()
    assert [t.to_stage for t in model.step_epoch()] == [S.EMBARGOED]


def test_gradual_prune_fades_alpha_with_a_frozen_seed() -> None:
    model = make_model()
    to_holding(model, target=0.8)
    x, y = batch()
    model.prune("early", "fast", "linear")
    seed = model.slots["early"].seed
    frozen = [p.detach().clone() for p in seed.parameters()]
    alphas = []
    for _ in range(3):
        alphas.append(model.summary()[0].alpha)
        train_step(model, x, y)
        model.step_epoch()
    assert alphas == pytest.approx([0.8, 0.4, 0.0])
    assert all(torch.equal(a, b) for a, b in zip(frozen, seed.parameters()))
    assert stage(model, "early") == S.EMBARGOED


def test_execute_dispatches_decoded_actions() -> None:
    model = make_model()
    assert model.execute(DecodedAction(op=Op.WAIT)) == []
    with pytest.raises(BadOpArgument, match="GERMINATE needs DecodedAction.blueprint"):
        model.execute(DecodedAction(op=Op.GERMINATE, slot="early"))
    action = DecodedAction(op=Op.GERMINATE, slot="early", blueprint="conv", style="add", tempo=0, alpha_target=1.0)
    assert [t.to_stage for t in model.execute(action)] == [S.GERMINATED, S.TRAINING]
    model.step_epoch()
    model.step_epoch()
    assert [t.to_stage for t in model.execute(DecodedAction(op=Op.ADVANCE, slot="early"))] == [S.BLENDING]
    assert model.summary()[0].alpha == 1.0  # tempo 0: at once
    retarget = DecodedAction(op=Op.SET_ALPHA_TARGET, slot="early", alpha_target=0.5, alpha_speed="instant", alpha_curve="linear")
    assert model.execute(retarget) == []
    assert [t.to_stage for t in model.execute(DecodedAction(op=Op.ADVANCE, slot="early"))] == [S.HOLDING]
    assert [t.to_stage for t in model.execute(DecodedAction(op=Op.FOSSILIZE, slot="early"))] == [S.FOSSILIZED]
    with pytest.raises(GateClosed):
        model.execute(DecodedAction(op=Op.PRUNE, slot="early", alpha_speed="fast", alpha_curve="linear"))


def test_grad_norm_ratio_accumulates_per_epoch() -> None:
    model = make_model()
    x, y = batch()
    model.germinate("late", "conv", "add", 2, 0.5)
    model.optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    model.record_grad_norms()
    seed_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.slots["late"].seed_parameters()]))
    host_norm = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for g in model.optimizer.host.param_groups for p in g["params"]])
    )
    assert model.summary()[1].grad_norm_ratio == 0.0  # nothing read until the epoch closes
    model.step_epoch()
    summaries = model.summary()
    assert summaries[1].grad_norm_ratio == pytest.approx((seed_norm / host_norm).item(), rel=1e-5)
    assert summaries[0].grad_norm_ratio == 0.0
    model.step_epoch()  # an epoch without batches reads as 0
    assert model.summary()[1].grad_norm_ratio == 0.0


def test_set_contribution_shows_in_the_summary_and_needs_a_seed() -> None:
    model = make_model()
    with pytest.raises(BadOpArgument, match="holds no seed"):
        model.set_contribution("early", 0.1)
    model.germinate("early", "conv", "add", 2, 0.5)
    model.set_contribution("early", 0.25)
    assert model.summary()[0].last_contribution == 0.25


@by_topology
def test_checkpoint_round_trip_rebuilds_an_identical_model(topology: Topology) -> None:
    model = topology.model()
    x, y = topology.batch()
    first, second = topology.slots
    to_holding(model, first, topology=topology)
    model.fossilize(first)
    model.germinate(second, topology.normalising_blueprint, tuple(topology.styles)[-1], 1, 0.5)
    for _ in range(2):
        train_step(model, x, y)
        model.step_epoch()
    model.advance(second)
    train_step(model, x, y)
    model.set_contribution(second, -0.125)
    buffer = io.BytesIO()
    morphology = json.loads(json.dumps(model.morphology()))
    torch.save({"model": model.state_dict(), "optim": model.optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    restored = MorphogeneticModel.restore(
        topology.make_host(), dict(topology.blueprints), dict(topology.styles), FAST_LIFECYCLE, TRAINING, morphology
    )
    restored.load_state_dict(saved["model"])
    restored.optimizer.load_state_dict(saved["optim"])
    assert restored.summary() == model.summary()
    assert restored.morphology() == model.morphology()
    assert restored.host_param_count() == model.host_param_count()
    for _ in range(2):  # same next steps, bit for bit (optimiser moments included)
        assert torch.equal(train_step(model, x, y), train_step(restored, x, y))
        assert model.step_epoch() == restored.step_epoch()
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name


def test_morphology_mismatch_is_reported() -> None:
    model = make_model()
    morphology = model.morphology()
    morphology["slots"] = {"other": morphology["slots"]["early"]}
    with pytest.raises(ValueError, match="slots"):
        make_model().load_morphology(morphology)
    with pytest.raises(ValueError, match="format"):
        make_model().load_morphology({**model.morphology(), "format": 99})


@by_topology
def test_host_without_seeds_behaves_like_the_plain_host(topology: Topology) -> None:
    torch.manual_seed(0)
    plain = topology.make_host()
    model = topology.model(seed=0)
    x, _ = topology.batch()
    assert torch.equal(model(x), plain(x))
    assert plain.slot_points() == tuple(model.slots[name].point for name in topology.slots)
