"""Plugin discovery: walk the ``esper`` entry points one by one and build a ``PluginRegistry``.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin whose import raises, so the loader
walks the entry points itself with one ``try`` per plugin: a broken plugin is reported (name,
distribution, version, exception, a hint how to get rid of it) and everything else keeps working.
Built-in plugins are found exactly like third-party ones, through the ``esper-grow`` distribution's entry points.

Environment switches (read when a registry is built, never at import):
``ESPER_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-ins, ``ESPER_DISABLE_PLUGINS=name,name`` skips
plugins by entry-point or distribution name, ``ESPER_TRACE_PLUGINS=1`` prints every hook call and result
to stderr (pluggy's hook-call monitoring).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import sys
import traceback
from typing import Any, Callable, Iterable, Mapping, TextIO

import attrs
import pluggy

import esper_core
from esper_core import hookspecs
from esper_core.hookspecs import KIND_HOOKS, PROJECT
from esper_core.plugins.registry import (
    KINDS,
    ObserverError,
    PluginInfo,
    PluginRegistry,
    UnknownPluginError,
)
from esper_core.specs import SPEC_TYPES

ENTRY_POINT_GROUP = "esper"
BUILTIN_DISTRIBUTION = esper_core.DISTRIBUTION
#: Names the built-in distribution had before (checkpoints written then record them as the contributor).
FORMER_BUILTIN_DISTRIBUTIONS: frozenset[str] = frozenset({"esper"})
ENV_DISABLE_AUTOLOAD = "ESPER_DISABLE_PLUGIN_AUTOLOAD"
ENV_DISABLE = "ESPER_DISABLE_PLUGINS"
ENV_TRACE = "ESPER_TRACE_PLUGINS"

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "FORMER_BUILTIN_DISTRIBUTIONS",
    "KINDS",
    "ObserverError",
    "PluginInfo",
    "PluginLoadError",
    "PluginRegistry",
    "UnknownPluginError",
    "load_registry",
    "registry_from_plugins",
]


class PluginLoadError(RuntimeError):
    """Strict mode: at least one plugin is broken. Lists every broken plugin with its hint."""

    def __init__(self, broken: Iterable[PluginInfo]) -> None:
        self.broken = tuple(broken)
        lines = [f"{len(self.broken)} plugin(s) failed to load:"]
        for info in self.broken:
            lines.append(f"  {info.describe()}: {info.error}")
            if info.hint:
                lines.append(f"    hint: {info.hint}")
        super().__init__("\n".join(lines))


class _PluginFailure(Exception):
    """Internal: why one candidate was rejected (message and hint for its PluginInfo)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@attrs.frozen(kw_only=True)
class _Candidate:
    """Something that may become a plugin: an entry point (loaded lazily) or an in-process object."""

    name: str
    distribution: str | None
    version: str | None
    source: str
    load: Callable[[], object] = attrs.field(eq=False)

    @property
    def manager_name(self) -> str:
        """Name inside its pluggy manager (shown by the trace): distribution-qualified when there is one."""
        return f"{self.distribution}:{self.name}" if self.distribution else self.name

    def info(self, **changes: Any) -> PluginInfo:
        return PluginInfo(
            name=self.name, distribution=self.distribution, version=self.version, source=self.source, **changes
        )


# ------------------------------------------------------------------------------------------- switches
def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _disabled_names(environ: Mapping[str, str]) -> frozenset[str]:
    return frozenset(part.strip() for part in environ.get(ENV_DISABLE, "").split(",") if part.strip())


def _canonical(distribution: str | None) -> str:
    return (distribution or "").lower().replace("_", "-").replace(".", "-")


def _is_builtin(candidate: _Candidate) -> bool:
    return _canonical(candidate.distribution) == BUILTIN_DISTRIBUTION


# ----------------------------------------------------------------------------------------- candidates
def _entry_point_candidates() -> list[_Candidate]:
    """Every entry point of the group: built-ins first, then by distribution and entry-point name.

    The order is independent of ``sys.path`` order, so installing a plugin never reorders the built-ins
    (registration order becomes action-head order, which checkpoints record).
    """
    candidates = []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        candidates.append(
            _Candidate(
                name=entry_point.name,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
                source=entry_point.value,
                load=entry_point.load,
            )
        )
    return sorted(candidates, key=lambda c: (not _is_builtin(c), _canonical(c.distribution), c.name))


def _object_candidates(objects: Iterable[object]) -> list[_Candidate]:
    return [
        _Candidate(
            name=getattr(obj, "__name__", None) or type(obj).__name__,
            distribution=None,
            version=None,
            source=repr(obj),
            load=lambda obj=obj: obj,
        )
        for obj in objects
    ]


# -------------------------------------------------------------------------------------------- hints
def _hint(candidate: _Candidate) -> str | None:
    skip = f"skip it with {ENV_DISABLE}={candidate.name}"
    if candidate.distribution is None:
        return None
    if _is_builtin(candidate):
        return f"this plugin ships with Esper: reinstall {BUILTIN_DISTRIBUTION} (pip install -e . in a checkout), or {skip}"
    return f"pip uninstall {candidate.distribution}, or {skip}"


def _describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------------------- loading
def _check_api_version(candidate: _Candidate, plugin: object) -> None:
    declared = getattr(plugin, "ESPER_PLUGIN_API", None)
    if declared is None or (isinstance(declared, int) and declared == esper_core.PLUGIN_API_VERSION):
        return
    upgrade = f"pip install -U {candidate.distribution}, " if candidate.distribution and not _is_builtin(candidate) else ""
    raise _PluginFailure(
        f"incompatible plugin API: it declares ESPER_PLUGIN_API = {declared!r}, "
        f"esper {esper_core.__version__} provides plugin API {esper_core.PLUGIN_API_VERSION}",
        f"upgrade or replace it ({upgrade}pip uninstall {candidate.distribution or candidate.name}), "
        f"or skip it with {ENV_DISABLE}={candidate.name}",
    )


def _check_hook_names(manager: pluggy.PluginManager, plugin: object) -> None:
    """A typo'd hook (``esper_blueprint``) would otherwise be silently ignored."""
    for caller in manager.get_hookcallers(plugin) or ():
        if caller.has_spec():
            continue
        impls = [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]
        if all(impl.optionalhook for impl in impls):
            continue
        close = difflib.get_close_matches(caller.name, _hook_names(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise _PluginFailure(f"implements unknown hook {caller.name}{hint}")


def _hook_names() -> list[str]:
    return [*KIND_HOOKS.values(), *hookspecs.OBSERVER_HOOKS]


def _validated(kind: str, hook_name: str, results: list[Any]) -> list[Any]:
    spec_type = SPEC_TYPES[kind]
    specs: list[Any] = []
    for result in results:  # pluggy drops None results; a plugin returns at most one list
        if not isinstance(result, (list, tuple)):
            raise _PluginFailure(f"{hook_name}() returned {type(result).__name__}, expected a list of {spec_type.__name__}")
        for item in result:
            if not isinstance(item, spec_type):
                raise _PluginFailure(
                    f"{hook_name}() returned a {type(item).__name__} ({item!r:.80}), expected {spec_type.__name__}"
                )
            if not isinstance(item.name, str) or not item.name:
                raise _PluginFailure(f"{hook_name}() returned a {spec_type.__name__} without a name")
            specs.append(item)
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise _PluginFailure(f"{hook_name}() returned the {kind} name(s) {', '.join(repeated)} more than once")
    return specs


def _contributions(manager: pluggy.PluginManager) -> dict[str, list[Any]]:
    contributed: dict[str, list[Any]] = {}
    for kind, hook_name in KIND_HOOKS.items():
        try:
            results = getattr(manager.hook, hook_name)()
        except (Exception, SystemExit) as exc:  # SystemExit: a plugin's hook must not end esper
            raise _PluginFailure(f"hook {hook_name}() raised {_describe_exception(exc)}") from exc
        specs = _validated(kind, hook_name, results)
        if specs:
            contributed[kind] = specs
    return contributed


def _duplicates(
    candidate: _Candidate, contributed: Mapping[str, list[Any]], owners: Mapping[tuple[str, str], PluginInfo]
) -> None:
    clashes = [(kind, spec.name) for kind, specs in contributed.items() for spec in specs if (kind, spec.name) in owners]
    if not clashes:
        return
    this = candidate.info().describe()
    details = "; ".join(f"{kind} {name!r} is already contributed by {owners[(kind, name)].describe()}" for kind, name in clashes)
    raise _PluginFailure(
        f"duplicate names from {this}: {details}",
        f"rename it in one of the two plugins, uninstall one "
        f"(pip uninstall {candidate.distribution or candidate.name}), or skip it with {ENV_DISABLE}={candidate.name}",
    )


@attrs.define
class _Builder:
    """Accumulates healthy plugins one candidate at a time; a rejected candidate leaves no trace behind.

    Every plugin gets a pluggy manager of its own, so a hook call reaches exactly one plugin: its failure
    is its own, and its results cannot be mixed up with another plugin's.
    """

    trace: bool = False
    trace_stream: TextIO | None = None
    specs: dict[str, dict[str, Any]] = attrs.field(factory=lambda: {kind: {} for kind in KINDS})
    owners: dict[tuple[str, str], PluginInfo] = attrs.field(factory=dict)
    infos: list[PluginInfo] = attrs.field(factory=list)
    healthy: list[tuple[PluginInfo, pluggy.PluginManager]] = attrs.field(factory=list)

    def add(self, candidate: _Candidate) -> None:
        manager = _new_manager(self.trace, self.trace_stream)
        try:
            plugin = self._import(candidate)
            _check_api_version(candidate, plugin)
            self._register(manager, candidate, plugin)
            _check_hook_names(manager, plugin)
            contributed = _contributions(manager)
            _duplicates(candidate, contributed, self.owners)
        except _PluginFailure as failure:
            self._reject(candidate, failure.message, failure.hint or _hint(candidate), failure)
            return
        info = candidate.info(contributes={kind: [spec.name for spec in specs] for kind, specs in contributed.items()})
        for kind, specs in contributed.items():
            for spec in specs:
                self.specs[kind][spec.name] = spec
                self.owners[(kind, spec.name)] = info
        self.infos.append(info)
        self.healthy.append((info, manager))

    def _import(self, candidate: _Candidate) -> object:
        try:
            return candidate.load()
        except (Exception, SystemExit) as exc:  # SystemExit: a plugin must not end `esper plugins`
            raise _PluginFailure(f"failed to import {candidate.source}: {_describe_exception(exc)}") from exc

    def _register(self, manager: pluggy.PluginManager, candidate: _Candidate, plugin: object) -> None:
        try:
            manager.register(plugin, name=candidate.manager_name)
        except Exception as exc:
            raise _PluginFailure(f"could not be registered: {_describe_exception(exc)}") from exc

    def _reject(self, candidate: _Candidate, message: str, hint: str | None, failure: BaseException) -> None:
        cause = failure.__cause__ or failure
        text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        self.infos.append(candidate.info(error=message, hint=hint, traceback=text))

    def skip(self, candidate: _Candidate, reason: str) -> None:
        self.infos.append(candidate.info(disabled=reason))

    def registry(self) -> PluginRegistry:
        observers = [
            (info, manager.hook.esper_on_event) for info, manager in self.healthy if manager.hook.esper_on_event.get_hookimpls()
        ]
        return PluginRegistry(specs=self.specs, contributors=self.owners, plugins=self.infos, observers=observers)


def _new_manager(trace: bool, stream: TextIO | None = None) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    if trace:
        _install_trace(manager, stream)
    return manager


def _install_trace(manager: pluggy.PluginManager, stream: TextIO | None) -> None:
    """Print every hook call and its outcome (``ESPER_TRACE_PLUGINS=1``)."""

    def out() -> TextIO:
        return stream if stream is not None else sys.stderr  # looked up late: tests capture stderr

    def before(hook_name: str, impls: list[Any], kwargs: Mapping[str, Any]) -> None:
        plugins = ", ".join(impl.plugin_name for impl in impls) or "no plugin"
        arguments = ", ".join(f"{key}={value!r:.200}" for key, value in kwargs.items())
        print(f"[esper trace] {hook_name}({arguments}) -> {plugins}", file=out())

    def after(outcome: Any, hook_name: str, impls: list[Any], kwargs: Mapping[str, Any]) -> None:
        if outcome.exception is not None:
            print(f"[esper trace] {hook_name} raised {_describe_exception(outcome.exception)}", file=out())
        else:
            print(f"[esper trace] {hook_name} returned {outcome.get_result()!r:.500}", file=out())

    manager.add_hookcall_monitoring(before, after)


def _finish(builder: _Builder, strict: bool) -> PluginRegistry:
    registry = builder.registry()
    if strict and registry.broken:
        raise PluginLoadError(registry.broken)
    return registry


# ---------------------------------------------------------------------------------------- public API
def load_registry(
    strict: bool = False, *, environ: Mapping[str, str] | None = None, trace_stream: TextIO | None = None
) -> PluginRegistry:
    """Discover every plugin of the ``esper`` entry-point group and build a registry.

    ``strict``: a broken plugin raises ``PluginLoadError`` (after all were tried, so all are named).
    ``environ`` defaults to ``os.environ``; ``trace_stream`` (default stderr) receives the trace output.
    """
    env = os.environ if environ is None else environ
    autoload = not _truthy(env.get(ENV_DISABLE_AUTOLOAD))
    disabled = _disabled_names(env)
    builder = _Builder(trace=_truthy(env.get(ENV_TRACE)), trace_stream=trace_stream)
    for candidate in _entry_point_candidates():
        if candidate.name in disabled or candidate.distribution in disabled:
            builder.skip(candidate, f"disabled by {ENV_DISABLE}")
        elif not autoload and not _is_builtin(candidate):
            builder.skip(candidate, f"not built in, and {ENV_DISABLE_AUTOLOAD} is set")
        else:
            builder.add(candidate)
    return _finish(builder, strict)


def registry_from_plugins(
    *plugins: object, builtins: bool = False, strict: bool = True, trace_stream: TextIO | None = None
) -> PluginRegistry:
    """A registry from plugin objects or modules given in-process (tests, notebooks).

    ``builtins``: also load the built-in entry points of the ``esper`` distribution, first.
    ``strict`` defaults to True here: in a test, a broken plugin should fail loudly.
    ``trace_stream``: print every hook call there (the ``ESPER_TRACE_PLUGINS`` output).
    """
    builder = _Builder(trace=trace_stream is not None, trace_stream=trace_stream)
    if builtins:
        for candidate in _entry_point_candidates():
            if _is_builtin(candidate):
                builder.add(candidate)
    for candidate in _object_candidates(plugins):
        builder.add(candidate)
    return _finish(builder, strict)
