"""Observers: each gets its own deep copy of every record, a broken one starves no other, unknown names,
bad options and a missing optional dependency are refused before a run starts, with the key named."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper_core.config import ConfigError, ObserversConfig
from esper_core.hookspecs import hookimpl
from esper_core.plugins import registry_from_plugins
from esper_core.run.observers import ObserverSet, ObserversError, ObserverSetupError, build_observers
from esper_core.run.telemetry import Telemetry
from esper_core.specs import ObserverSpec

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
records = st.dictionaries(st.text(max_size=6), json_value, max_size=5).map(lambda d: {**d, "type": "reward"})


def vandalise(value: Any) -> None:
    """Change every container inside ``value`` in place (what a careless observer might do)."""
    if isinstance(value, dict):
        for item in list(value.values()):
            vandalise(item)
        value["vandalised"] = True
    elif isinstance(value, list):
        for item in value:
            vandalise(item)
        value.append("vandalised")


class Recorder:
    def __init__(self, mutate: bool = False) -> None:
        self.seen: list[dict[str, Any]] = []
        self.mutate = mutate
        self.closed = 0

    def on_event(self, event: dict[str, Any]) -> None:
        self.seen.append(copy.deepcopy(event))
        if self.mutate:
            vandalise(event)

    def close(self) -> None:
        self.closed += 1


class HookVandal:
    @hookimpl
    def esper_on_event(self, event: dict[str, Any]) -> None:
        vandalise(event)


class HookRecorder:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    @hookimpl
    def esper_on_event(self, event: dict[str, Any]) -> None:
        self.seen.append(copy.deepcopy(event))


@given(records)
def test_an_observer_that_mutates_its_record_changes_nothing_the_next_one_sees(record: dict[str, Any]) -> None:
    original = copy.deepcopy(record)
    vandal, witness = Recorder(mutate=True), Recorder()
    ObserverSet([("vandal", vandal), ("witness", witness)]).emit(record)
    assert witness.seen == [original] and record == original


@given(records)
def test_esper_on_event_hooks_each_get_a_deep_copy(record: dict[str, Any]) -> None:
    original = copy.deepcopy(record)
    witness = HookRecorder()
    registry = registry_from_plugins(HookVandal(), witness)
    registry.emit(record)
    assert witness.seen == [original] and record == original


def test_a_failing_observer_is_reported_once_and_every_other_observer_still_gets_each_record() -> None:
    class Broken(Recorder):
        def on_event(self, event: dict[str, Any]) -> None:
            raise RuntimeError("sink down")

    witness, reports = Recorder(), []
    observers = ObserverSet([("broken", Broken()), ("witness", witness)])
    telemetry = Telemetry(None, observers=observers, on_hook_error=reports.append)
    for round_index in range(3):
        telemetry.metrics_line({"round": round_index})
    telemetry.close()
    telemetry.close()
    assert [r["round"] for r in witness.seen] == [0, 1, 2] and witness.closed == 1
    assert reports == ["observer failed: ObserversError: observer 'broken': RuntimeError: sink down"]
    with pytest.raises(ObserversError, match="broken"):
        ObserverSet([("broken", Broken())]).emit({"type": "x"})


class Sinks:
    """A plugin with one observer whose factory can be made to fail like a missing optional dependency."""

    def __init__(self, available: bool = True) -> None:
        self.available = available
        self.built: list[Recorder] = []

    def make(self, options: Any) -> Recorder:
        if not self.available:
            raise ImportError("the probe observer needs the probe package: pip install 'esper-grow[probe]'")
        self.built.append(Recorder())
        return self.built[-1]

    @hookimpl
    def esper_observers(self) -> list[ObserverSpec]:
        return [ObserverSpec(name="probe", description="records events", factory=self.make)]


def test_only_enabled_observers_are_built_in_their_order() -> None:
    sinks = Sinks()
    registry = registry_from_plugins(sinks, builtins=True)
    assert not build_observers(registry, ObserversConfig())
    assert sinks.built == []
    built = build_observers(registry, ObserversConfig(enabled=("probe", "tensorboard")))
    assert built.names == ("probe", "tensorboard") and len(sinks.built) == 1


def test_unknown_observer_names_and_option_keys_are_config_errors_naming_the_key() -> None:
    registry = registry_from_plugins(Sinks(), builtins=True)
    with pytest.raises(ConfigError) as info:
        build_observers(registry, ObserversConfig(enabled=("tensorbored",), options={"probe": {"x": 1}}))
    text = str(info.value)
    assert "observers.enabled: unknown observer 'tensorbored'; did you mean tensorboard?" in text
    assert "observers.options.probe.x: unknown key" in text
    with pytest.raises(ConfigError, match=r"observers\.options\.tensorboard\.subdir: must be a plain folder name"):
        build_observers(registry, ObserversConfig(options={"tensorboard": {"subdir": "../elsewhere"}}))


def test_a_missing_optional_dependency_stops_the_run_before_it_starts_with_the_install_hint() -> None:
    registry = registry_from_plugins(Sinks(available=False), builtins=False)
    with pytest.raises(ObserverSetupError) as info:
        build_observers(registry, ObserversConfig(enabled=("probe",)))
    assert isinstance(info.value, ValueError)  # the CLI shows it as one message, exit code 1
    assert "observer 'probe' (observers.enabled) cannot start" in str(info.value)
    assert "pip install 'esper-grow[probe]'" in str(info.value)


def test_the_builtin_sinks_say_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("tensorboard", "wandb") else real(name, *a))
    registry = registry_from_plugins(builtins=True)
    for name in ("tensorboard", "wandb"):
        with pytest.raises(ObserverSetupError, match=rf"pip install 'esper-grow\[{name}\]'"):
            build_observers(registry, ObserversConfig(enabled=(name,)))


def test_esper_run_without_the_extra_says_what_to_install_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import importlib.util

    from click.testing import CliRunner

    from esper_core.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = CliRunner().invoke(
        main, ["run", "--task", "synthetic", "--host", "tiny_cnn", "--run-dir", str(tmp_path), "--name", "r",
               "--observer", "tensorboard", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "observer 'tensorboard' (observers.enabled) cannot start" in result.output
    assert "pip install 'esper-grow[tensorboard]'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()  # refused before the run directory was made
