"""The observers a run switched on (``observers.enabled``): built once per run, each fed its own copy of
every event, closed once at the end.

Why here and not in the registry's ``emit``: ``esper_on_event`` implementations are always on and
stateless; an ``ObserverSpec`` is a sink a user switches on per run, with options, and an instance that
keeps state (an open writer) for that run only. Both receive the same records.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

from esper_core.config.loading import ConfigError, ConfigProblem, structure_options
from esper_core.config.sections import ObserversConfig
from esper_core.plugins.registry import UnknownPluginError
from esper_core.protocols import Observer


class ObserversError(RuntimeError):
    """One or more enabled observers raised on an event; every other observer still received it."""

    def __init__(self, failures: Sequence[tuple[str, BaseException]]) -> None:
        self.failures = tuple(failures)
        text = "; ".join(f"observer {name!r}: {type(error).__name__}: {error}" for name, error in self.failures)
        super().__init__(text)


class ObserverSetupError(ValueError):
    """An enabled observer cannot start (typically its optional dependency is missing); the message names
    the observer and says what to install."""


class ObserverSet:
    """The enabled observers of one run, in ``observers.enabled`` order."""

    def __init__(self, members: Sequence[tuple[str, Observer]] = ()) -> None:
        self._members = tuple(members)
        self._closed = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._members)

    def __bool__(self) -> bool:
        return bool(self._members)

    def emit(self, record: Mapping[str, Any]) -> None:
        """Each observer gets its own deep copy; failures are collected and raised together afterwards."""
        if self._closed:
            return
        failures: list[tuple[str, BaseException]] = []
        for name, observer in self._members:
            try:
                observer.on_event(copy.deepcopy(dict(record)))
            except Exception as error:  # one broken sink must not starve the others
                failures.append((name, error))
        if failures:
            raise ObserversError(failures)

    def close(self) -> None:
        """Close every observer once (later calls do nothing); failures are raised together afterwards."""
        if self._closed:
            return
        self._closed = True
        failures: list[tuple[str, BaseException]] = []
        for name, observer in self._members:
            try:
                observer.close()
            except Exception as error:
                failures.append((name, error))
        if failures:
            raise ObserversError(failures)


def observer_options(registry: Any, config: ObserversConfig) -> dict[str, Any]:
    """Every named observer's options, structured and checked (unknown names and keys are errors naming
    ``observers.enabled`` or ``observers.options.<name>.<key>``), also for observers not switched on."""
    problems: list[ConfigProblem] = []
    options: dict[str, Any] = {}
    for key, names in (("observers.enabled", config.enabled), ("observers.options", tuple(config.options))):
        for name in names:
            if name in options:
                continue
            try:
                spec = registry.get("observer", name)
            except UnknownPluginError as error:
                problems.append(ConfigProblem(key, str(error)))
                continue
            try:
                options[name] = structure_options(spec, dict(config.options.get(name, {})), f"observers.options.{name}")
            except ConfigError as error:
                problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    return options


def build_observers(registry: Any, config: ObserversConfig) -> ObserverSet:
    """An instance of every enabled observer. A factory that cannot work here (its optional dependency
    is missing) raises with the install hint before the run starts, not halfway through it."""
    options = observer_options(registry, config)
    members = []
    for name in config.enabled:
        try:
            members.append((name, registry.get("observer", name).factory(options[name])))
        except Exception as error:
            raise ObserverSetupError(
                f"observer {name!r} (observers.enabled) cannot start: {error}; or switch it off"
            ) from error
    return ObserverSet(members)
