"""Hook specifications of the ``esper`` pluggy project: the whole surface a plugin can implement.

Every kind is contributed the same way: a hook with no arguments that returns a list of spec objects
(``esper_core.specs``). One shape for every kind keeps plugins uniform and lets the registry check each
result in one place. A plugin module implements any subset, marking functions with ``@hookimpl``::

    from esper_core.hookspecs import hookimpl

    @hookimpl
    def esper_blueprints():
        return [BlueprintSpec(name="my_seed", description="...", factory=MySeed)]

A module may declare ``ESPER_PLUGIN_API = <int>``; a value other than ``esper_core.PLUGIN_API_VERSION``
makes the plugin be reported as incompatible instead of loaded.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import pluggy

if TYPE_CHECKING:
    from esper_core.specs import (
        BlendStyleSpec,
        BlueprintSpec,
        HostSpec,
        ObserverSpec,
        PolicySpec,
        RewardSpec,
        TaskSpec,
    )

PROJECT = "esper"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def esper_tasks() -> list[TaskSpec]:
    """Return the tasks (datasets with their augmentation) this plugin provides, as ``TaskSpec`` objects.

    A task's ``auto_priority`` decides whether ``task.name = "auto"`` may pick it, and its ``topologies``
    for which hosts (``HostSpec.topology``): auto picks only a task the chosen host can read.
    """


@hookspec
def esper_hosts() -> list[HostSpec]:
    """Return the host networks this plugin provides, as ``HostSpec`` objects.

    A host declares its ``topology`` (e.g. ``"cnn"``) so only fitting blueprints are offered for its slots,
    and may declare ``preset_adjustments`` (sizes it needs on top of a preset, e.g. for the CPU demo).
    """


@hookspec
def esper_blueprints() -> list[BlueprintSpec]:
    """Return the seed designs this plugin provides, as ``BlueprintSpec`` objects.

    Every enabled blueprint becomes an entry of the policy's blueprint head at run start, so a third-party
    blueprint is choosable with no edit to the core.
    """


@hookspec
def esper_blend_styles() -> list[BlendStyleSpec]:
    """Return the ways a seed's output can be blended into host features, as ``BlendStyleSpec`` objects."""


@hookspec
def esper_rewards() -> list[RewardSpec]:
    """Return the reward functions this plugin provides, as ``RewardSpec`` objects."""


@hookspec
def esper_policies() -> list[PolicySpec]:
    """Return the controllers (learning or not) this plugin provides, as ``PolicySpec`` objects."""


@hookspec
def esper_observers() -> list[ObserverSpec]:
    """Return the observers (metrics sinks and the like) this plugin provides, as ``ObserverSpec`` objects.

    An observer is off until a run lists its name in ``observers.enabled`` (``esper run --observer NAME``);
    each run then builds its own instance, which receives every event.
    """


@hookspec
def esper_on_event(event: dict[str, Any]) -> None:
    """Observe one telemetry event (a JSON-able dict with a ``type`` key, its own deep copy) as it is written.

    Called for every event and metrics line of every run, always on. For a sink that keeps state or that a
    user switches on per run, contribute an ``ObserverSpec`` through ``esper_observers`` instead.
    The return value is ignored; an exception is reported and never stops the run or other observers.
    """


#: Kind name (as in ``esper_core.specs.SPEC_TYPES``) -> the hook that contributes that kind.
KIND_HOOKS: Mapping[str, str] = MappingProxyType({
    "task": "esper_tasks",
    "host": "esper_hosts",
    "blueprint": "esper_blueprints",
    "blend_style": "esper_blend_styles",
    "reward": "esper_rewards",
    "policy": "esper_policies",
    "observer": "esper_observers",
})

#: Hooks that observe rather than contribute.
OBSERVER_HOOKS: tuple[str, ...] = ("esper_on_event",)
