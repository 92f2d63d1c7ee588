"""Finding and holding plugins: entry-point discovery with per-plugin isolation (``loader``) and the
registry a run looks names up in (``registry``). ``esper_core.plugins.load_registry`` is the path plugin
authors and tools use; it is kept stable."""

from esper_core.plugins.loader import (
    BUILTIN_DISTRIBUTION,
    ENTRY_POINT_GROUP,
    ENV_DISABLE,
    ENV_DISABLE_AUTOLOAD,
    ENV_TRACE,
    PluginLoadError,
    load_registry,
    registry_from_plugins,
)
from esper_core.plugins.registry import (
    KINDS,
    ObserverError,
    PluginInfo,
    PluginRegistry,
    UnknownPluginError,
    preset_adjustments_of,
)

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "ENV_DISABLE",
    "ENV_DISABLE_AUTOLOAD",
    "ENV_TRACE",
    "KINDS",
    "ObserverError",
    "PluginInfo",
    "PluginLoadError",
    "PluginRegistry",
    "UnknownPluginError",
    "load_registry",
    "preset_adjustments_of",
    "registry_from_plugins",
]
