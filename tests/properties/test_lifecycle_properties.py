"""Invariant 9 and friends, over random sequences of model API calls (legal or not) on a tiny model of
each topology (``support.topologies``: a tiny CNN and a tiny gpt on in-memory bytes).

- only table transitions happen, and the returned transitions are exactly the stage changes seen;
- an illegal call raises LifecycleError and changes nothing (morphology, tensors, optimiser layout);
- the API accepts a call exactly when ``legal_ops_for_slot`` (and ``germination_allowed``) say so, and
  those agree with the independent reference the masks are tested against;
- FOSSILIZED never changes;
- a pruned slot is DORMANT again after exactly max(1, fade) + embargo + resetting epochs, instant prune
  included, and cannot be germinated before;
- alpha stays in [0, 1] and reaches its target after exactly the scheduled number of epochs;
- during TRAINING the host's outputs, gradients and trajectory are bit-identical to the host without the
  seed, while the seed's parameters do get gradient.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import torch
from hypothesis import event, given, strategies as st

from esper_core.config import LifecycleConfig
from esper_core.growth.lifecycle import (
    TRANSITIONS,
    LifecycleError,
    germination_allowed,
    legal_ops_for_slot,
)
from esper_core.growth.model import MorphogeneticModel
from esper_core.ops import ALPHA_SPEEDS, Op
from esper_core.stages import SeedStage as S
from support.lifecycle_strategies import apply_call, guided_call, lifecycle_configs, train_step
from support.lifecycle_truth import reference_germination_allowed, reference_legal_ops_for_slot
from support.topologies import TOPOLOGIES, Topology, by_topology

OP_OF_CALL = {
    "germinate": Op.GERMINATE,
    "advance": Op.ADVANCE,
    "set_alpha_target": Op.SET_ALPHA_TARGET,
    "prune": Op.PRUNE,
    "fossilize": Op.FOSSILIZE,
}


def snapshot(model: MorphogeneticModel) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return json.dumps(model.morphology(), sort_keys=True), state, model.optimizer.layout()


def same_snapshot(a: tuple, b: tuple) -> bool:
    return (
        a[0] == b[0]
        and a[2] == b[2]
        and a[1].keys() == b[1].keys()
        and all(torch.equal(a[1][k], b[1][k]) for k in a[1])
    )


def accepted_by_gates(model: MorphogeneticModel, call: tuple, lifecycle: LifecycleConfig) -> bool:
    name = call[0]
    if name == "step":
        return True
    summaries = model.summary()
    summary = summaries[model.slot_names.index(call[1])]
    op = OP_OF_CALL[name]
    legal = op in legal_ops_for_slot(summary, lifecycle)
    if op == Op.GERMINATE:
        legal = legal and germination_allowed(summaries, lifecycle)
    return legal


class AlphaOracle:
    """What alpha must be, from the calls alone: (start, target, epochs, steps done) per slot."""

    def __init__(self) -> None:
        self.schedules: dict[str, list[float]] = {}
        self.germination: dict[str, tuple[float, int]] = {}

    def on_call(self, call: tuple, transitions: list, alpha_before: float) -> None:
        name = call[0]
        if name == "germinate":
            self.germination[call[1]] = (call[5], call[4])
        elif name == "advance" and transitions[0].to_stage == S.BLENDING:
            target, tempo = self.germination[call[1]]
            self.schedules[call[1]] = [0.0, target, tempo, 0]
        elif name == "set_alpha_target":
            self.schedules[call[1]] = [alpha_before, call[2], ALPHA_SPEEDS[call[3]], 0]
        elif name == "prune":
            self.schedules[call[1]] = [alpha_before, 0.0, ALPHA_SPEEDS[call[2]], 0]

    def on_step(self, stages_before: dict[str, S]) -> None:
        for slot, schedule in self.schedules.items():
            if stages_before[slot] in (S.BLENDING, S.PRUNED):
                schedule[3] += 1

    def check(self, model: MorphogeneticModel) -> None:
        for summary in model.summary():
            assert 0.0 <= summary.alpha <= 1.0
            assert model.slots[summary.name].alpha.item() == torch.tensor(summary.alpha).item()
            if summary.stage in (S.DORMANT, S.TRAINING, S.EMBARGOED, S.RESETTING):
                assert summary.alpha == 0.0
                continue
            if summary.stage not in (S.BLENDING, S.HOLDING, S.FOSSILIZED, S.PRUNED):
                continue
            start, target, epochs, steps = self.schedules[summary.name]
            at_target = start == target or steps >= epochs
            assert summary.alpha_at_target is at_target, (summary, self.schedules[summary.name])
            if at_target:
                assert summary.alpha == target  # exactly
            else:
                assert min(start, target) <= summary.alpha <= max(start, target)


@by_topology
@given(lifecycle=lifecycle_configs(), n_calls=st.integers(1, 40), seed=st.integers(0, 3), data=st.data())
def test_random_call_sequences_respect_the_lifecycle(
    topology: Topology, lifecycle: LifecycleConfig, n_calls: int, seed: int, data
) -> None:
    model = topology.model(lifecycle=lifecycle, seed=seed)
    oracle = AlphaOracle()
    steps_since_prune: dict[str, int] = {}
    expected_cooldown: dict[str, int] = {}
    for _ in range(n_calls):
        call = guided_call(data, model, lifecycle)
        summaries = model.summary()
        for summary in summaries:
            assert legal_ops_for_slot(summary, lifecycle) == reference_legal_ops_for_slot(summary, lifecycle)
        assert germination_allowed(summaries, lifecycle) == reference_germination_allowed(summaries, lifecycle)
        stages_before = {s.name: s.stage for s in summaries}
        alpha_before = {s.name: s.alpha for s in summaries}
        before = snapshot(model)
        expected_ok = accepted_by_gates(model, call, lifecycle)

        result = apply_call(model, call)

        if isinstance(result, LifecycleError):
            assert not expected_ok, f"{call} refused although the gates allow it: {result}"
            assert same_snapshot(before, snapshot(model)), f"refused {call} changed the model"
            continue
        assert expected_ok, f"{call} accepted although the gates forbid it"
        for transition in result:
            event(f"reached {transition.to_stage.name}")
        stages_after = {s.name: s.stage for s in model.summary()}
        for slot in topology.slots:  # the returned transitions chain from the old stage to the new one, via the table
            chain = [t for t in result if t.slot == slot]
            stage = stages_before[slot]
            for transition in chain:
                assert transition.from_stage == stage and transition.to_stage in TRANSITIONS[stage]
                stage = transition.to_stage
            assert stage == stages_after[slot]
            if stages_before[slot] == S.FOSSILIZED:
                assert stages_after[slot] == S.FOSSILIZED
        if call[0] == "step":
            oracle.on_step(stages_before)
            for slot in list(steps_since_prune):
                steps_since_prune[slot] += 1
                if stages_after[slot] == S.DORMANT:
                    assert steps_since_prune[slot] == expected_cooldown[slot]
                    del steps_since_prune[slot]
                else:
                    assert steps_since_prune[slot] < expected_cooldown[slot]
        else:
            oracle.on_call(call, result, alpha_before[call[1]])
        if call[0] == "prune":
            fade = ALPHA_SPEEDS[call[2]] if alpha_before[call[1]] > 0.0 else 0
            expected_cooldown[call[1]] = max(1, fade) + lifecycle.embargo_epochs + lifecycle.resetting_epochs
            steps_since_prune[call[1]] = 0
        oracle.check(model)
        live = sum(s.stage in (S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING) for s in model.summary())
        assert live <= lifecycle.max_seeds
        assert set(model.optimizer.seed_slots) == {
            name for name, s in model.slots.items() if s.stage in (S.TRAINING, S.BLENDING, S.HOLDING)
        }


def host_parameters(model: MorphogeneticModel) -> dict[str, torch.Tensor]:
    seed_ids = {id(p) for s in model.slots.values() for p in s.seed_parameters()}
    return {n: p for n, p in model.named_parameters() if id(p) not in seed_ids}


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


@by_topology
@given(
    seed=st.integers(0, 2**16),
    slot_index=st.integers(0, 1),
    choice=st.data(),
    steps=st.integers(1, 3),
    blended_neighbour=st.booleans(),
)
def test_training_seed_is_invisible_to_the_host(
    topology: Topology, seed: int, slot_index: int, choice: st.DataObject, steps: int, blended_neighbour: bool
) -> None:
    """Against a copy taken just before germination: same outputs, same host grads, same host trajectory.
    Invariant 9 holds on every topology: every host's declared isolation contains TRAINING."""
    assert all(S.TRAINING in t.isolation for t in TOPOLOGIES)
    slot = topology.slots[slot_index]
    blueprint = choice.draw(st.sampled_from(tuple(topology.blueprints)), label="blueprint")
    style = choice.draw(st.sampled_from(tuple(topology.styles)), label="style")
    model = topology.model(lifecycle=LifecycleConfig(min_training_epochs=0, max_seeds=2), seed=seed)
    if blended_neighbour:  # the other slot already holds a blended seed that trains alongside
        other = topology.slots[1 - slot_index]
        model.germinate(other, topology.random_blueprint, tuple(topology.styles)[-1], 0, 0.7)
        model.advance(other)
        train_step(model, *topology.batch(seed=seed))
    reference = copy.deepcopy(model)
    model.germinate(slot, blueprint, style, 2, 1.0)
    seed_params = list(model.slots[slot].seed.parameters())  # the blend style is not used in TRAINING
    for i in range(steps):
        x, y = topology.batch(seed=seed + i + 1)
        outputs = []
        for m in (model, reference):
            m.optimizer.zero_grad()
            out = m(x)
            torch.nn.functional.cross_entropy(out, y).backward()
            m.record_grad_norms()
            outputs.append(out)
        assert torch.equal(bits(outputs[0]), bits(outputs[1]))
        grown, plain = host_parameters(model), host_parameters(reference)
        assert grown.keys() == plain.keys()
        for name in plain:
            assert torch.equal(bits(grown[name].grad), bits(plain[name].grad)), name
        assert all(p.grad is not None for p in seed_params)
        assert any(p.grad.abs().sum() > 0 for p in seed_params)
        model.optimizer.step()
        reference.optimizer.step()
    grown, plain = host_parameters(model), host_parameters(reference)
    assert all(torch.equal(bits(grown[n]), bits(plain[n])) for n in plain)
    host_buffers = {n: b for n, b in reference.named_buffers()}
    assert all(torch.equal(b, host_buffers[n]) for n, b in model.named_buffers() if n in host_buffers)
