"""The second topology: the gpt host and the transformer blueprints against the same contracts, masks and
isolation invariant (9) as the CNN ones, with both topologies side by side where the property is shared."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from esper_blends.plugin import esper_blend_styles
from esper_blueprints.plugin import BUILTIN_BLUEPRINTS
from esper_core.blueprint_contract import blueprint_contract_problems
from esper_core.config import LifecycleConfig, TrainingConfig
from esper_core.growth.model import MorphogeneticModel
from esper_core.host_contract import host_contract_problems
from esper_core.records import TaskInfo
from esper_core.rl.actions import ActionSpace
from esper_core.stages import SeedStage as S
from esper_core.validators import IncompatibleSettings
from esper_hosts.plugin import esper_hosts

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "esper-blueprint-demo"))
from esper_blueprint_demo.conv_dilated import CONV_DILATED as THIRD_PARTY  # noqa: E402 - the example plugin's blueprint

HOSTS = {spec.name: spec for spec in esper_hosts()}
BLUEPRINTS = {spec.name: spec for spec in (*BUILTIN_BLUEPRINTS, THIRD_PARTY)}
STYLES = {spec.name: spec for spec in esper_blend_styles()}
TRANSFORMER_BLUEPRINTS = tuple(name for name, spec in BLUEPRINTS.items() if spec.supports("transformer"))
SEQUENCE = TaskInfo("bytes", in_channels=1, image_size=12, num_classes=256, sequence_length=12)
IMAGES = TaskInfo("images", in_channels=3, image_size=16, num_classes=5)
#: One host per topology, each on a task it reads.
TOPOLOGY_HOSTS = {"cnn": ("tiny_cnn", IMAGES), "transformer": ("gpt_impaired", SEQUENCE)}


def build_host(topology: str, **options: object) -> tuple[torch.nn.Module, TaskInfo]:
    name, info = TOPOLOGY_HOSTS[topology]
    spec = HOSTS[name]
    return spec.factory(spec.options_type(**options), info), info


def example_batch(info: TaskInfo, seed: int, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if info.sequence_length is not None:
        tokens = torch.randint(0, info.num_classes, (size, info.sequence_length + 1), generator=generator)
        return tokens[:, :-1], tokens[:, 1:]
    x = torch.randn(size, info.in_channels, info.image_size, info.image_size, generator=generator)
    return x, torch.randint(0, info.num_classes, (size,), generator=generator)


@pytest.mark.parametrize("name", ["gpt", "gpt_impaired"])
def test_gpt_hosts_pass_the_host_contract(name: str) -> None:
    spec = HOSTS[name]
    host = spec.factory(spec.options_type(), SEQUENCE)
    assert host_contract_problems(host, SEQUENCE) == []
    assert spec.topology == host.topology == "transformer"
    assert all(point.feature_shape == (SEQUENCE.sequence_length, point.channels) for point in host.slot_points())


def test_gpt_refuses_an_image_task_and_a_too_long_sequence_naming_the_fix() -> None:
    spec = HOSTS["gpt"]
    # IncompatibleSettings: the user's choice of task or context is at fault, not the host (errors.py).
    with pytest.raises(IncompatibleSettings, match="sequence task"):
        spec.factory(spec.options_type(), IMAGES)
    with pytest.raises(IncompatibleSettings, match="host.options.context"):
        spec.factory(spec.options_type(context=8), SEQUENCE)
    with pytest.raises(ValueError, match="must divide width"):
        spec.options_type(width=30, heads=4)


@pytest.mark.parametrize("name", list(HOSTS))
def test_every_host_refuses_a_task_of_the_other_topology_by_its_own_name_naming_the_fix(name: str) -> None:
    spec = HOSTS[name]
    images = spec.topology == "cnn"
    fix = "reads images, but task 'bytes' gives token sequences; choose an image task" if images else (
        "reads token sequences, but task 'images' gives images; choose a sequence task"
    )
    with pytest.raises(IncompatibleSettings, match=f"^host {name!r} {fix}"):
        spec.factory(spec.options_type(), SEQUENCE if images else IMAGES)


@pytest.mark.parametrize("blueprint", TRANSFORMER_BLUEPRINTS)
def test_transformer_blueprints_pass_the_blueprint_contract_in_gpt(blueprint: str) -> None:
    host, info = build_host("transformer")
    assert blueprint_contract_problems(BLUEPRINTS[blueprint], sizes=(), host=host, info=info) == []


@pytest.mark.parametrize("topology", sorted(TOPOLOGY_HOSTS))
def test_masks_offer_exactly_the_blueprints_and_styles_of_the_slot_topology(topology: str) -> None:
    """Every blueprint listed explicitly (the third-party CNN one included): those of another topology
    stay in the head but are masked out on every slot, never an error."""
    host, _ = build_host(topology)
    names = list(BLUEPRINTS)
    space = ActionSpace.build(
        slots=[p.name for p in host.slot_points()], blueprints=names,
        blueprint_topologies={n: BLUEPRINTS[n].topologies for n in names},
        styles=list(STYLES), style_topologies={n: STYLES[n].topologies for n in STYLES},
        tempos=(1,), alpha_targets=(1.0,), topology=host.topology,
    )
    support = space.blueprint_support()
    offered = {name for name, ok in zip(space.blueprints, support[0].tolist()) if ok}
    assert offered == {n for n in names if BLUEPRINTS[n].supports(topology)}
    assert (THIRD_PARTY.name in offered) == (topology == "cnn")
    assert bool(support.any(dim=1).all())  # every slot has something to grow
    styles = {name for name, ok in zip(space.styles, space.style_support()[0].tolist()) if ok}
    assert ("gated" in styles) == (topology == "cnn")


@pytest.mark.parametrize("topology", sorted(TOPOLOGY_HOSTS))
def test_germinating_a_blueprint_of_the_other_topology_is_refused_before_anything_changes(topology: str) -> None:
    host, _ = build_host(topology)
    model = MorphogeneticModel(host, BLUEPRINTS, STYLES, LifecycleConfig(), TrainingConfig())
    foreign = "lora" if topology == "cnn" else THIRD_PARTY.name
    slot = model.slot_names[0]
    with pytest.raises(Exception, match="topology"):
        model.germinate(slot, foreign, "linear_add", 1, 1.0)
    assert model.slots[slot].stage == S.DORMANT


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), blueprint=st.sampled_from(TRANSFORMER_BLUEPRINTS), steps=st.integers(1, 2))
def test_invariant_9_a_training_seed_is_invisible_to_the_gpt_host(seed: int, blueprint: str, steps: int) -> None:
    """Invariant 9 on the transformer topology: same outputs, host grads and host trajectory as without it."""
    torch.manual_seed(seed)
    host, info = build_host("transformer")
    model = MorphogeneticModel(host, BLUEPRINTS, STYLES, LifecycleConfig(min_training_epochs=0), TrainingConfig())
    reference = copy.deepcopy(model)
    slot = model.slot_names[0]
    model.germinate(slot, blueprint, "linear_add", 2, 1.0)
    assert model.slots[slot].stage == S.TRAINING
    seed_params = list(model.slots[slot].seed.parameters())
    seed_ids = {id(p) for p in seed_params}
    for step in range(steps):
        x, y = example_batch(info, seed + step)
        outputs = []
        for m in (model, reference):
            m.optimizer.zero_grad()
            out = m(x)
            F.cross_entropy(out, y).backward()
            outputs.append(out)
        assert torch.equal(bits(outputs[0]), bits(outputs[1]))
        plain = dict(reference.named_parameters())
        for name, p in model.named_parameters():
            if id(p) not in seed_ids:
                assert torch.equal(bits(p.grad), bits(plain[name].grad)), name
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in seed_params)
        model.optimizer.step()
        reference.optimizer.step()


def test_gpt_declares_that_isolation_ends_at_blending_and_the_slot_follows_it() -> None:
    host, info = build_host("transformer")
    assert host.seed_isolation == frozenset({S.TRAINING})
    model = MorphogeneticModel(host, BLUEPRINTS, STYLES, LifecycleConfig(min_training_epochs=0), TrainingConfig())
    slot = model.slots[model.slot_names[0]]
    assert slot.isolation == frozenset({S.TRAINING})
    features = torch.randn(2, *slot.point.feature_shape, requires_grad=True)
    slot.stage = S.BLENDING
    assert slot.seed_input(features) is features  # the host co-adapts through the seed
    slot.stage = S.TRAINING
    assert not slot.seed_input(features).requires_grad


def test_a_host_declaring_a_wider_isolation_gets_it_and_a_bad_declaration_is_refused() -> None:
    host, _ = build_host("transformer")
    host.seed_isolation = frozenset({S.TRAINING, S.BLENDING})
    model = MorphogeneticModel(host, BLUEPRINTS, STYLES, LifecycleConfig(), TrainingConfig())
    assert all(slot.isolation == {S.TRAINING, S.BLENDING} for slot in model.slots.values())
    other, _ = build_host("transformer")
    other.seed_isolation = frozenset({S.BLENDING})
    with pytest.raises(ValueError, match="seed_isolation must contain TRAINING"):
        MorphogeneticModel(other, BLUEPRINTS, STYLES, LifecycleConfig(), TrainingConfig())
