"""The plugin registry: what every loaded plugin contributed, keyed by ``(kind, name)``.

It is an ordinary object built once per run (``esper_core.plugins.loader.load_registry``), never a global, so
tests and tools can hold several side by side. It also remembers every plugin it looked at, broken or
disabled ones included, because ``esper plugins`` must be able to explain why something is missing.
"""

from __future__ import annotations

import copy
import difflib
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

import attrs

from esper_core.specs import SPEC_TYPES

#: Kinds in the order ``esper plugins`` shows them.
KINDS: tuple[str, ...] = tuple(SPEC_TYPES)


def _freeze_contributions(value: Mapping[str, Iterable[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({kind: tuple(names) for kind, names in value.items() if tuple(names)})


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One plugin as the loader saw it: where it came from, what it contributed, or why it did not."""

    name: str
    distribution: str | None = None
    version: str | None = None
    source: str | None = None  # the entry point's target ("pkg.module") or the object's repr
    contributes: Mapping[str, tuple[str, ...]] = attrs.field(
        factory=dict, converter=_freeze_contributions, hash=False
    )
    error: str | None = None
    hint: str | None = None
    disabled: str | None = None  # why it was skipped on purpose (an environment switch)
    traceback: str | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def broken(self) -> bool:
        return self.error is not None

    def describe(self) -> str:
        """``plugin 'x' (distribution d 1.2)``: how errors name a contributor."""
        if self.distribution is None:
            return f"plugin {self.name!r} (registered in-process)"
        return f"plugin {self.name!r} (distribution {self.distribution} {self.version or '?'})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``esper plugins --json``."""
        return {
            "plugin": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "contributes": {kind: list(names) for kind, names in self.contributes.items()},
            "error": self.error,
            "hint": self.hint,
            "disabled": self.disabled,
        }


class UnknownPluginError(LookupError):
    """A name that no loaded plugin contributes; the message lists the known names and close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str], broken: int = 0) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        self.suggestions = tuple(difflib.get_close_matches(name, self.known, n=3, cutoff=0.6))
        parts = [f"unknown {kind} {name!r}"]
        if self.suggestions:
            parts.append(f"did you mean {' or '.join(self.suggestions)}?")
        parts.append(f"known {kind} names: {', '.join(self.known)}" if self.known else f"no {kind} is registered")
        if broken:
            parts.append(f"{broken} plugin(s) failed to load, see `esper plugins`")
        super().__init__("; ".join(parts))

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0])


class ObserverError(RuntimeError):
    """One or more ``esper_on_event`` observers raised; every other observer still received the event."""

    def __init__(self, failures: Iterable[tuple[PluginInfo, BaseException]]) -> None:
        self.failures = tuple(failures)
        text = "; ".join(f"{info.describe()}: {type(exc).__name__}: {exc}" for info, exc in self.failures)
        super().__init__(f"esper_on_event failed in {text}")


def preset_adjustments_of(registry: Any) -> Callable[[str, str], Mapping[str, Any]]:
    """``load_config``'s lookup of a host's adjustments to a preset, read from the hosts ``registry`` holds
    (any object with ``get(kind, name)``). An unknown host adjusts nothing: the run's setup reports it."""

    def adjustments(host: str, preset: str) -> Mapping[str, Any]:
        try:
            spec = registry.get("host", host)
        except LookupError:
            return {}
        return getattr(spec, "preset_adjustments", {}).get(preset, {})

    return adjustments


def check_kind(kind: str) -> str:
    if kind not in SPEC_TYPES:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown plugin kind {kind!r}{hint}; kinds are: {', '.join(KINDS)}")
    return kind


class PluginRegistry:
    """``(kind, name) -> spec`` plus who contributed it, every plugin seen, and the event fan-out.

    Built by ``esper_core.plugins.loader``; read-only afterwards.
    """

    def __init__(
        self,
        *,
        specs: Mapping[str, Mapping[str, Any]],
        contributors: Mapping[tuple[str, str], PluginInfo],
        plugins: Iterable[PluginInfo],
        observers: Iterable[tuple[PluginInfo, Callable[..., Any]]] = (),
    ) -> None:
        self._specs = {kind: dict(specs.get(kind, {})) for kind in KINDS}
        self._contributors = dict(contributors)
        self._plugins = tuple(plugins)
        self._observers = tuple(observers)

    def get(self, kind: str, name: str) -> Any:
        """The spec registered as ``name``; ``UnknownPluginError`` (with suggestions) if there is none."""
        specs = self._specs[check_kind(kind)]
        try:
            return specs[name]
        except KeyError:
            raise UnknownPluginError(kind, name, specs, broken=len(self.broken)) from None

    def names(self, kind: str) -> tuple[str, ...]:
        """Registered names in registration order (built-ins first, then by distribution and entry point)."""
        return tuple(self._specs[check_kind(kind)])

    def specs(self, kind: str) -> dict[str, Any]:
        """A fresh ``name -> spec`` dict, in registration order."""
        return dict(self._specs[check_kind(kind)])

    def contributor(self, kind: str, name: str) -> PluginInfo:
        """The plugin that contributed ``(kind, name)``."""
        self.get(kind, name)
        return self._contributors[(kind, name)]

    @property
    def plugins(self) -> tuple[PluginInfo, ...]:
        """Every plugin the loader considered, including broken and disabled ones."""
        return self._plugins

    @property
    def broken(self) -> tuple[PluginInfo, ...]:
        return tuple(info for info in self._plugins if info.broken)

    def emit(self, event: dict[str, Any]) -> None:
        """Hand ``event`` to every ``esper_on_event`` observer; failures are collected, then raised together.

        Each observer gets its own deep copy, so one observer cannot change what the next one (or the
        events file) sees, however deep it reaches (``event["components"]["rent"] = ...``).
        """
        failures: list[tuple[PluginInfo, BaseException]] = []
        for info, call in self._observers:
            try:
                call(event=copy.deepcopy(event))
            except (Exception, SystemExit) as exc:  # one broken observer must not starve the others (nor exit)
                failures.append((info, exc))
        if failures:
            raise ObserverError(failures)

    def __repr__(self) -> str:
        counts = ", ".join(f"{kind}={len(self._specs[kind])}" for kind in KINDS)
        return f"<PluginRegistry {counts}; plugins={len(self._plugins)}, broken={len(self.broken)}>"
