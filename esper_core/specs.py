"""What a plugin contributes: one frozen spec per registered thing, kind by kind.

A hook returns a list of these. Plugin-specific options are an attrs class (``options_type``); the
config's ``options`` table for the chosen plugin is structured into it strictly (unknown keys fail).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import attrs


if TYPE_CHECKING:
    import torch.nn as nn

    from esper_core.protocols import BlendStyle, Host, Observer, Policy, Reward, Task
    from esper_core.records import PolicyContext, TaskInfo


@attrs.frozen
class NoOptions:
    """Options type for plugins that take none: any key given is an error."""


@attrs.frozen(kw_only=True)
class TaskSpec:
    """A task: ``factory(options) -> Task``.

    ``auto_priority``: when the config says ``task.name = "auto"`` the available task with the highest
    priority wins (None: never picked automatically).

    ``topologies``: the host topologies (``HostSpec.topology``) whose input the task's data is, e.g.
    ``{"cnn"}`` for images, ``{"transformer"}`` for token sequences (``TaskInfo.sequence_length`` set). Why:
    ``task.name = "auto"`` must pick a task the chosen host can read, so it considers only the tasks that
    ``supports`` the host's topology. A task named explicitly is not filtered; the host refuses it itself.
    """

    kind: ClassVar[str] = "task"
    name: str
    description: str
    factory: Callable[[Any], "Task"]
    options_type: type = NoOptions
    auto_priority: int | None = None
    topologies: frozenset[str] = frozenset({"cnn"})

    def supports(self, topology: str) -> bool:
        return topology in self.topologies


def _check_preset_adjustments(instance: "HostSpec", attribute: attrs.Attribute, value: Any) -> None:
    # Imported here, not at module level: the contract imports no room, but a host's adjustments name the
    # config's presets, so a misspelt one fails when the spec is built (the plugin shows as broken).
    from esper_core.config.presets import adjustment_problems

    problems = adjustment_problems(f"host {instance.name!r}", value)
    if problems:
        raise ValueError("; ".join(problems))


def _frozen_tree(tree: Mapping[str, Any]) -> Mapping[str, Any]:
    from esper_core.config.presets import frozen_tree  # see _check_preset_adjustments

    return frozen_tree(tree)


@attrs.frozen(kw_only=True)
class HostSpec:
    """A host network: ``factory(options, info) -> Host`` for a task described by ``info``.

    ``preset_adjustments``: preset name -> nested override dict layered right above that preset when this
    host is chosen (defaults < preset < these < config file < flags). Why: a preset sizes a run for a kind
    of hardware, but what fits in minutes on a CPU depends on the host (a transformer step costs more than a
    small CNN's), and the core's presets never name a host. Unknown keys fail when a config is loaded,
    naming the host, the preset and the key.
    """

    kind: ClassVar[str] = "host"
    name: str
    description: str
    factory: Callable[[Any, "TaskInfo"], "Host"]
    topology: str
    options_type: type = NoOptions
    preset_adjustments: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=dict, converter=lambda value: _frozen_tree(value) if isinstance(value, Mapping) else value,
        validator=_check_preset_adjustments, hash=False,  # a read-only mapping has no hash; the name identifies
    )


@attrs.frozen(kw_only=True)
class BlueprintSpec:
    """A seed design: ``factory(channels, spatial) -> nn.Module`` mapping [B,C,H,W] -> [B,C,H,W].

    The module must start near-harmless (its output close to zero) so germination preserves function.
    """

    kind: ClassVar[str] = "blueprint"
    name: str
    description: str
    factory: Callable[[int, int], "nn.Module"]
    topologies: frozenset[str] = frozenset({"cnn"})

    def supports(self, topology: str) -> bool:
        return topology in self.topologies

    def build(self, channels: int, spatial: int) -> "nn.Module":
        return self.factory(channels, spatial)

    def param_count(self, channels: int, spatial: int) -> int:
        return sum(p.numel() for p in self.factory(channels, spatial).parameters())


@attrs.frozen(kw_only=True)
class BlendStyleSpec:
    """How a seed's output ``s`` enters the host's features ``h``: ``factory(channels) -> BlendStyle``."""

    kind: ClassVar[str] = "blend_style"
    name: str
    description: str
    formula: str
    factory: Callable[[int], "BlendStyle"]
    #: Topologies whose features the style can blend; None: any (most styles are elementwise).
    topologies: frozenset[str] | None = None


@attrs.frozen(kw_only=True)
class RewardSpec:
    """A reward: ``factory(options) -> Reward`` (one instance per env; it may keep episode state)."""

    kind: ClassVar[str] = "reward"
    name: str
    description: str
    factory: Callable[[Any], "Reward"]
    options_type: type = NoOptions


@attrs.frozen(kw_only=True)
class PolicySpec:
    """A controller: ``factory(options, context) -> Policy``. ``learns`` says whether ``update`` trains it."""

    kind: ClassVar[str] = "policy"
    name: str
    description: str
    factory: Callable[[Any, "PolicyContext"], "Policy"]
    options_type: type = NoOptions
    learns: bool = False


@attrs.frozen(kw_only=True)
class ObserverSpec:
    """A run observer, e.g. a metrics sink: ``factory(options) -> Observer``. Off unless its name is listed
    in ``observers.enabled``; its options are the table ``observers.options.<name>``.

    Why a kind and not only the ``esper_on_event`` hook: a sink keeps state between events (an open
    writer), and each run needs its own; a factory gives it an instance per run instead of a global.
    """

    kind: ClassVar[str] = "observer"
    name: str
    description: str
    factory: Callable[[Any], "Observer"]
    options_type: type = NoOptions


AnySpec = TaskSpec | HostSpec | BlueprintSpec | BlendStyleSpec | RewardSpec | PolicySpec | ObserverSpec

#: kind name -> spec class, in the order `esper plugins` shows them.
SPEC_TYPES: dict[str, type] = {
    "task": TaskSpec,
    "host": HostSpec,
    "blueprint": BlueprintSpec,
    "blend_style": BlendStyleSpec,
    "reward": RewardSpec,
    "policy": PolicySpec,
    "observer": ObserverSpec,
}
