"""Pytest fixtures for plugin authors (registered through the ``pytest11`` entry point of ``esper``).

Installing esper makes these fixtures available in any test suite; nothing to import::

    def test_my_blueprint_is_registered(esper_registry_factory):
        import my_package.plugin
        registry = esper_registry_factory(my_package.plugin)
        assert registry.get("blueprint", "my_seed").supports("cnn")

The registry is isolated: only your plugin objects plus (by default) esper's own built-ins, whatever
else is installed and whatever ``ESPER_*`` switches are set in the environment.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import pytest


class RegistryFactory(Protocol):
    def __call__(self, *plugins: object, builtins: bool = True, strict: bool = True) -> Any: ...


@pytest.fixture
def esper_registry_factory() -> Callable[..., Any]:
    """Build an isolated ``PluginRegistry`` from the given plugin modules/objects (plus the built-ins).

    ``builtins=False`` leaves esper's built-in plugins out; ``strict=False`` reports a broken plugin in
    ``registry.broken`` instead of raising ``PluginLoadError``.
    """
    from esper_core.plugins.loader import registry_from_plugins  # late: loading pytest plugins must stay cheap

    def factory(*plugins: object, builtins: bool = True, strict: bool = True) -> Any:
        return registry_from_plugins(*plugins, builtins=builtins, strict=strict)

    return factory
