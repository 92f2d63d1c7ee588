"""ActionSpace: building from values and registries, layout checks, decode/encode."""

import json

import attrs
import pytest
import torch

from esper_core.rl.actions import NOOP_BLUEPRINT, ActionSpace
from esper_core.config import ActionsConfig
from esper_core.ops import ALPHA_CURVES, ALPHA_SPEEDS, HEADS, Op
from esper_core.records import DecodedAction


def make_space(**overrides) -> ActionSpace:
    values = dict(
        slots=["early", "mid", "late"],
        blueprints=["light", "heavy", "mlp_only"],
        blueprint_topologies={"light": {"cnn"}, "heavy": {"cnn", "mlp"}, "mlp_only": {"mlp"}},
        styles=["add", "gate"],
        tempos=[3, 5, 8],
        alpha_targets=[0.5, 0.7, 1.0],
        topology="cnn",
    )
    values.update(overrides)
    return ActionSpace.build(**values)


@attrs.frozen
class FakeBlueprint:
    topologies: frozenset

    def supports(self, topology: str) -> bool:
        return topology in self.topologies


@attrs.frozen
class FakeStyle:
    name: str


class FakeRegistry:
    def __init__(self, blueprints, styles):
        self._specs = {"blueprint": blueprints, "blend_style": styles}

    def specs(self, kind):
        return dict(self._specs[kind])


def test_heads_in_order_with_noop_first():
    space = make_space()
    assert list(space.head_sizes) == list(HEADS)
    assert space.head_sizes == {
        "op": 6, "slot": 3, "blueprint": 4, "style": 2, "tempo": 3, "alpha_target": 3,
        "alpha_speed": len(ALPHA_SPEEDS), "alpha_curve": len(ALPHA_CURVES),
    }
    assert space.blueprints[0] == NOOP_BLUEPRINT
    assert space.layout()["alpha_speed"] == list(ALPHA_SPEEDS)


def test_layout_is_json_round_trippable_and_diff_is_empty_for_itself():
    space = make_space()
    restored = json.loads(json.dumps(space.layout()))
    assert restored == space.layout()
    assert space.diff(restored) == []


def test_diff_names_every_difference():
    space = make_space()
    other = space.layout()
    other["blueprint"] = ["noop", "heavy", "light", "mlp_only"]  # reordered
    other["style"] = ["add", "gate", "sigmoid"]  # extra entry
    other["slot"] = ["early", "mid"]  # one missing
    del other["tempo"]
    other["extra_head"] = [1]
    problems = "\n".join(space.diff(other, "the checkpoint"))
    assert "'blueprint' differs (same entries, other order: the checkpoint ['noop', 'heavy'" in problems
    assert "'style' differs (the checkpoint only: ['sigmoid'])" in problems
    assert "'slot' differs (this run only: ['late'])" in problems
    assert "action head 'tempo' is in this run but not in the checkpoint" in problems
    assert "action head 'extra_head' is in the checkpoint but not in this run" in problems


def test_blueprint_support_is_per_slot_topology():
    space = make_space(slot_topologies=["cnn", "mlp", "cnn"])
    support = space.blueprint_support()
    assert support.tolist() == [
        [False, True, True, False],
        [False, False, True, True],
        [False, True, True, False],
    ]
    styles = make_space(style_topologies={"gate": {"mlp"}}).style_support()
    assert styles.tolist() == [[True, False]] * 3


def test_from_registry_enables_fitting_blueprints_and_all_styles_by_default():
    registry = FakeRegistry(
        {"light": FakeBlueprint(frozenset({"cnn"})), "mlp_only": FakeBlueprint(frozenset({"mlp"}))},
        {"add": FakeStyle("add"), "gate": FakeStyle("gate")},
    )
    space = ActionSpace.from_registry(registry, "cnn", ["a", "b"], ActionsConfig())
    assert space.blueprints == ("noop", "light")
    assert space.styles == ("add", "gate")
    assert space.slots == ("a", "b")
    assert space.tempos == ActionsConfig().tempos
    explicit = ActionSpace.from_registry(registry, "cnn", ["a"], ActionsConfig(blueprints=("mlp_only", "light")))
    assert explicit.blueprints == ("noop", "mlp_only", "light")
    assert explicit.blueprint_support().tolist() == [[False, False, True]]  # listed but masked out


def test_from_registry_rejects_unknown_names_listing_the_known_ones():
    registry = FakeRegistry({"light": FakeBlueprint(frozenset({"cnn"}))}, {"add": FakeStyle("add")})
    with pytest.raises(ValueError, match=r"unknown blueprint\(s\) \['nope'\]; registered: \['light'\]"):
        ActionSpace.from_registry(registry, "cnn", ["a"], ActionsConfig(blueprints=("nope",)))
    with pytest.raises(ValueError, match=r"unknown blend style\(s\) \['mix'\]"):
        ActionSpace.from_registry(registry, "cnn", ["a"], ActionsConfig(blend_styles=("mix",)))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(slots=[]), "head 'slot' would be empty"),
        (dict(styles=[]), "head 'style' would be empty"),
        (dict(blueprints=["noop"], blueprint_topologies={"noop": {"cnn"}}), "reserved"),
        (dict(slots=["a", "a"]), "duplicate entries \\['a'\\]"),
        (dict(tempos=[0, 3]), "positive integers"),
        (dict(alpha_targets=[0.0]), "\\(0, 1\\]"),
        (dict(blueprint_topologies={}), "no entry for blueprints"),
    ],
)
def test_bad_values_give_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_space(**overrides)


def test_decode_sets_only_the_fields_the_op_uses():
    space = make_space()
    row = torch.tensor([int(Op.GERMINATE), 2, 1, 1, 2, 0, 3, 4])
    assert space.decode(row) == DecodedAction(
        op=Op.GERMINATE, slot="late", blueprint="light", style="gate", tempo=8, alpha_target=0.5
    )
    row[0] = int(Op.SET_ALPHA_TARGET)
    assert space.decode(row) == DecodedAction(
        op=Op.SET_ALPHA_TARGET, slot="late", alpha_target=0.5, alpha_speed="slow", alpha_curve=ALPHA_CURVES[4]
    )
    row[0] = int(Op.WAIT)
    assert space.decode(row) == DecodedAction(op=Op.WAIT)
    row[0] = int(Op.ADVANCE)
    assert space.decode(row) == DecodedAction(op=Op.ADVANCE, slot="late")


def test_decode_rejects_bad_rows():
    space = make_space()
    with pytest.raises(ValueError, match="head 'blueprint': index 4 out of range"):
        space.decode([1, 0, 4, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="8 indices"):
        space.decode([1, 0])


def test_encode_decode_round_trip_and_batch_decode():
    space = make_space()
    actions = [
        DecodedAction(op=Op.WAIT),
        DecodedAction(op=Op.GERMINATE, slot="mid", blueprint="heavy", style="add", tempo=5, alpha_target=1.0),
        DecodedAction(op=Op.PRUNE, slot="early", alpha_speed="instant", alpha_curve="cosine"),
        DecodedAction(op=Op.FOSSILIZE, slot="late"),
    ]
    rows = torch.stack([space.encode(a) for a in actions])
    assert rows.dtype == torch.long and rows.shape == (4, len(HEADS))
    assert space.decode_batch(rows) == actions
    assert rows[0, 1:].eq(0).all()  # irrelevant heads encode as 0


def test_encode_requires_values_for_relevant_heads():
    space = make_space()
    with pytest.raises(ValueError, match="GERMINATE needs a value for head 'blueprint'"):
        space.encode(DecodedAction(op=Op.GERMINATE, slot="mid", style="add", tempo=5, alpha_target=1.0))
    with pytest.raises(ValueError, match="'tempo': 4 is not one of \\[3, 5, 8\\]"):
        space.encode(
            DecodedAction(op=Op.GERMINATE, slot="mid", blueprint="light", style="add", tempo=4, alpha_target=1.0)
        )
