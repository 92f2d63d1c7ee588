"""The registry's behaviour with in-process plugins: lookups, errors, validation of hook results, events."""

from __future__ import annotations

import io
from typing import Any

import pytest

import esper_core
from esper_core.hookspecs import hookimpl
from esper_core.plugins import ObserverError, PluginLoadError, UnknownPluginError, registry_from_plugins
from esper_core.specs import (
    BlendStyleSpec,
    BlueprintSpec,
    HostSpec,
    PolicySpec,
    RewardSpec,
    TaskSpec,
)


def _blueprint(name: str) -> BlueprintSpec:
    return BlueprintSpec(name=name, description=f"{name} seed", factory=lambda channels, spatial: None)


class EveryKind:
    """Contributes one spec of every kind, so each hook's result lands under the right kind."""

    @hookimpl
    def esper_tasks(self) -> list[TaskSpec]:
        return [TaskSpec(name="t", description="task", factory=lambda options: None)]

    @hookimpl
    def esper_hosts(self) -> list[HostSpec]:
        return [HostSpec(name="h", description="host", factory=lambda options, info: None, topology="cnn")]

    @hookimpl
    def esper_blueprints(self) -> list[BlueprintSpec]:
        return [_blueprint("conv_light"), _blueprint("conv_heavy")]

    @hookimpl
    def esper_blend_styles(self) -> list[BlendStyleSpec]:
        return [BlendStyleSpec(name="add", description="add", formula="h + a*s", factory=lambda channels: None)]

    @hookimpl
    def esper_rewards(self) -> list[RewardSpec]:
        return [RewardSpec(name="r", description="reward", factory=lambda options: None)]

    @hookimpl
    def esper_policies(self) -> list[PolicySpec]:
        return [PolicySpec(name="p", description="policy", factory=lambda options, context: None)]


class Blueprints:
    def __init__(self, *names: str) -> None:
        self.names = names
        self.__name__ = "blueprints_" + "_".join(names)

    @hookimpl
    def esper_blueprints(self) -> list[BlueprintSpec]:
        return [_blueprint(name) for name in self.names]


class RaisingHook:
    __name__ = "raising"

    @hookimpl
    def esper_tasks(self) -> list[TaskSpec]:
        return [TaskSpec(name="would_be_dropped", description="", factory=lambda options: None)]

    @hookimpl
    def esper_blueprints(self) -> list[BlueprintSpec]:
        raise ValueError("cannot build the catalogue")


def test_every_hook_contributes_its_own_kind() -> None:
    registry = registry_from_plugins(EveryKind())
    assert registry.names("task") == ("t",)
    assert registry.names("host") == ("h",)
    assert registry.names("blueprint") == ("conv_light", "conv_heavy")
    assert registry.names("blend_style") == ("add",)
    assert registry.names("reward") == ("r",)
    assert registry.names("policy") == ("p",)
    assert isinstance(registry.get("host", "h"), HostSpec)
    assert list(registry.specs("blueprint")) == ["conv_light", "conv_heavy"]
    info = registry.contributor("policy", "p")
    assert info.name == "EveryKind" and info.distribution is None
    assert set(info.contributes) == {"task", "host", "blueprint", "blend_style", "reward", "policy"}


def test_specs_returns_a_copy() -> None:
    registry = registry_from_plugins(EveryKind())
    registry.specs("blueprint").clear()
    assert registry.names("blueprint") == ("conv_light", "conv_heavy")


def test_unknown_name_lists_known_names_and_suggests_close_matches() -> None:
    registry = registry_from_plugins(EveryKind())
    with pytest.raises(UnknownPluginError) as caught:
        registry.get("blueprint", "conv_lite")
    error = caught.value
    assert error.suggestions[0] == "conv_light"
    assert "did you mean conv_light" in str(error)
    assert "known blueprint names: conv_light, conv_heavy" in str(error)
    assert isinstance(error, LookupError)


def test_unknown_kind_is_a_clear_error() -> None:
    registry = registry_from_plugins(EveryKind())
    with pytest.raises(ValueError, match=r"unknown plugin kind 'blueprints' \(did you mean 'blueprint'\?\)"):
        registry.names("blueprints")


def test_a_raising_hook_breaks_only_its_plugin_and_contributes_nothing() -> None:
    registry = registry_from_plugins(RaisingHook(), Blueprints("fine"), strict=False)
    (broken,) = registry.broken
    assert broken.name == "raising"
    assert "hook esper_blueprints() raised ValueError: cannot build the catalogue" in broken.error
    assert registry.names("task") == ()  # its other contribution is dropped too: no half-loaded plugin
    assert registry.names("blueprint") == ("fine",)
    with pytest.raises(UnknownPluginError, match="1 plugin\\(s\\) failed to load"):
        registry.get("task", "would_be_dropped")


def test_strict_in_process_registry_raises_on_a_raising_hook() -> None:
    with pytest.raises(PluginLoadError, match="cannot build the catalogue"):
        registry_from_plugins(RaisingHook())


class WrongShape:
    __name__ = "wrong_shape"

    def __init__(self, result: Any) -> None:
        self.result = result

    @hookimpl
    def esper_blueprints(self) -> Any:
        return self.result


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"conv": None}, "returned dict, expected a list of BlueprintSpec"),
        (["conv"], "returned a str ('conv'), expected BlueprintSpec"),
        ([HostSpec(name="h", description="", factory=lambda o, i: None, topology="cnn")], "returned a HostSpec"),
        ([_blueprint("twice"), _blueprint("twice")], "returned the blueprint name(s) twice more than once"),
        ([_blueprint("")], "without a name"),
    ],
)
def test_wrong_hook_results_are_reported(result: Any, expected: str) -> None:
    registry = registry_from_plugins(WrongShape(result), strict=False)
    (broken,) = registry.broken
    assert expected in broken.error
    assert registry.names("blueprint") == ()


def test_a_hook_returning_none_contributes_nothing() -> None:
    registry = registry_from_plugins(WrongShape(None))
    assert registry.names("blueprint") == () and not registry.broken


def test_duplicates_between_in_process_plugins_name_both() -> None:
    with pytest.raises(PluginLoadError) as caught:
        registry_from_plugins(Blueprints("a", "b"), Blueprints("b"))
    message = str(caught.value)
    assert "plugin 'blueprints_b'" in message and "plugin 'blueprints_a_b'" in message and "'b'" in message


class MisspeltHook:
    __name__ = "misspelt"

    @hookimpl
    def esper_blueprint(self) -> list[BlueprintSpec]:
        return [_blueprint("x")]


def test_a_misspelt_hook_is_reported_not_ignored() -> None:
    registry = registry_from_plugins(MisspeltHook(), strict=False)
    (broken,) = registry.broken
    assert "unknown hook esper_blueprint (did you mean esper_blueprints?)" in broken.error


class OldApi:
    __name__ = "old_api"
    ESPER_PLUGIN_API = 0

    @hookimpl
    def esper_blueprints(self) -> list[BlueprintSpec]:
        return [_blueprint("old")]


def test_api_version_mismatch_in_process() -> None:
    registry = registry_from_plugins(OldApi(), strict=False)
    (broken,) = registry.broken
    assert f"provides plugin API {esper_core.PLUGIN_API_VERSION}" in broken.error
    assert registry.names("blueprint") == ()


class Observer:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.__name__ = name
        self.fail = fail
        self.seen: list[dict[str, Any]] = []

    @hookimpl
    def esper_on_event(self, event: dict[str, Any]) -> None:
        self.seen.append(event)
        event["mutated"] = True  # must not leak into what the next observer sees
        if self.fail:
            raise RuntimeError("sink is down")


def test_emit_reaches_every_observer_even_when_one_raises() -> None:
    first, failing, last = Observer("first"), Observer("failing", fail=True), Observer("last")
    registry = registry_from_plugins(first, failing, last)
    event = {"type": "seed_transition", "slot": "early"}

    with pytest.raises(ObserverError) as caught:
        registry.emit(event)

    assert [info.name for info, _ in caught.value.failures] == ["failing"]
    assert "sink is down" in str(caught.value)
    for observer in (first, failing, last):
        assert observer.seen == [{"type": "seed_transition", "slot": "early", "mutated": True}]
    assert event == {"type": "seed_transition", "slot": "early"}


def test_emit_without_observers_is_a_no_op() -> None:
    registry_from_plugins(EveryKind()).emit({"type": "metrics"})


def test_in_process_trace_stream_sees_event_calls() -> None:
    stream = io.StringIO()
    registry = registry_from_plugins(Observer("watcher"), trace_stream=stream)
    registry.emit({"type": "round_end"})
    assert "esper_on_event(event={'type': 'round_end'}) -> watcher" in stream.getvalue()
    assert "esper_on_event returned []" in stream.getvalue()


class RenamedImpl:
    """Implements a hook under another function name (pluggy's ``specname``)."""

    __name__ = "renamed"

    @hookimpl(specname="esper_blueprints")
    def catalogue(self) -> list[BlueprintSpec]:
        return [_blueprint("renamed_seed")]


def test_each_plugin_is_credited_only_with_its_own_results() -> None:
    registry = registry_from_plugins(Blueprints("plain_seed"), RenamedImpl())
    assert registry.contributor("blueprint", "plain_seed").name == "blueprints_plain_seed"
    assert registry.contributor("blueprint", "renamed_seed").name == "renamed"
    assert registry.names("blueprint") == ("plain_seed", "renamed_seed")
