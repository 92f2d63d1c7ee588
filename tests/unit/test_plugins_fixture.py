"""The ``esper_registry_factory`` fixture that plugin authors get through the pytest11 entry point."""

from __future__ import annotations

import importlib.metadata

import pytest

from esper_core.hookspecs import hookimpl
from esper_core.specs import BlendStyleSpec


class AuthorsPlugin:
    __name__ = "authors_plugin"

    @hookimpl
    def esper_blend_styles(self) -> list[BlendStyleSpec]:
        return [BlendStyleSpec(name="author_blend", description="x", formula="h + s", factory=lambda c: None)]


def test_fixture_is_registered_as_a_pytest_plugin() -> None:
    targets = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert "esper_core.testing" in targets


def test_fixture_builds_an_isolated_registry(esper_registry_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESPER_DISABLE_PLUGINS", "authors_plugin")  # environment switches do not apply
    registry = esper_registry_factory(AuthorsPlugin(), builtins=False)
    assert registry.names("blend_style") == ("author_blend",)
    assert [info.name for info in registry.plugins] == ["authors_plugin"]


def test_fixture_adds_the_builtins_of_the_esper_distribution_first(esper_registry_factory) -> None:
    registry = esper_registry_factory(AuthorsPlugin(), strict=False)  # built-ins may still be in progress
    sources = [(info.distribution, info.name) for info in registry.plugins]
    assert sources[-1] == (None, "authors_plugin")
    assert sources[:-1] and all(distribution == "esper-grow" for distribution, _ in sources[:-1])
    assert "author_blend" in registry.names("blend_style")


def test_fixture_is_strict_by_default(esper_registry_factory) -> None:
    class Broken:
        __name__ = "broken"

        @hookimpl
        def esper_blend_styles(self) -> list[BlendStyleSpec]:
            raise RuntimeError("oops")

    from esper_core.plugins import PluginLoadError

    with pytest.raises(PluginLoadError, match="oops"):
        esper_registry_factory(Broken(), builtins=False)
