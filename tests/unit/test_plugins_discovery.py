"""Plugin discovery through real entry points: broken plugins are reported, the rest keep working."""

from __future__ import annotations

import io

import pytest
from support.plugin_dists import BLUEPRINT_PLUGIN, RAISES_ON_IMPORT, PluginSite, plugin_site  # noqa: F401

import esper_core
from esper_core.plugins import PluginLoadError, load_registry


def _by_name(registry, name):
    return next(info for info in registry.plugins if info.name == name)


def test_a_plugin_raising_on_import_is_reported_and_the_rest_still_load(plugin_site: PluginSite) -> None:
    # "aaa-broken" sorts first: pluggy's own loader would stop here and never reach the good plugin.
    plugin_site.add("aaa-broken", "0.3", {"broken": "broken"}, {"broken": RAISES_ON_IMPORT})
    plugin_site.add("zzz-good", "1.2", {"good": "good"}, {"good": BLUEPRINT_PLUGIN.format(name="good_seed")})

    registry = load_registry()

    broken = _by_name(registry, "broken")
    assert broken.broken and broken.distribution == "aaa-broken" and broken.version == "0.3"
    assert "RuntimeError" in broken.error and "broken on purpose" in broken.error
    assert "pip uninstall aaa-broken" in broken.hint and "ESPER_DISABLE_PLUGINS=broken" in broken.hint
    assert "broken on purpose" in broken.traceback
    assert registry.broken == (broken,)

    good = _by_name(registry, "good")
    assert not good.broken and good.distribution == "zzz-good" and good.version == "1.2"
    assert dict(good.contributes) == {"blueprint": ("good_seed",)}
    assert registry.get("blueprint", "good_seed").description == "test blueprint"
    assert registry.contributor("blueprint", "good_seed") == good


def test_strict_mode_makes_a_broken_plugin_fatal_and_names_it(plugin_site: PluginSite) -> None:
    plugin_site.add("bad-dist", "0.1", {"bad": "bad"}, {"bad": RAISES_ON_IMPORT})
    plugin_site.add("ok-dist", "0.1", {"ok": "ok"}, {"ok": BLUEPRINT_PLUGIN.format(name="ok_seed")})
    with pytest.raises(PluginLoadError) as caught:
        load_registry(strict=True)
    message = str(caught.value)
    assert "'bad'" in message and "bad-dist 0.1" in message and "pip uninstall bad-dist" in message
    assert [info.name for info in caught.value.broken] == ["bad"]


def test_duplicate_names_are_rejected_naming_both_contributors(plugin_site: PluginSite) -> None:
    plugin_site.add("first-dist", "1.0", {"first": "first"}, {"first": BLUEPRINT_PLUGIN.format(name="same")})
    plugin_site.add("second-dist", "2.0", {"second": "second"}, {"second": BLUEPRINT_PLUGIN.format(name="same")})

    registry = load_registry()

    second = _by_name(registry, "second")
    assert second.broken
    assert "plugin 'first' (distribution first-dist 1.0)" in second.error
    assert "plugin 'second' (distribution second-dist 2.0)" in second.error
    assert "blueprint 'same'" in second.error
    assert registry.contributor("blueprint", "same").name == "first"
    assert registry.names("blueprint") == ("same",)


def test_incompatible_plugin_api_is_reported_with_an_upgrade_hint(plugin_site: PluginSite) -> None:
    future = f"ESPER_PLUGIN_API = {esper_core.PLUGIN_API_VERSION + 1}\n" + BLUEPRINT_PLUGIN.format(name="future")
    current = f"ESPER_PLUGIN_API = {esper_core.PLUGIN_API_VERSION}\n" + BLUEPRINT_PLUGIN.format(name="current")
    plugin_site.add("future-dist", "9.0", {"future": "future"}, {"future": future})
    plugin_site.add("current-dist", "1.0", {"current": "current"}, {"current": current})

    registry = load_registry()

    future_info = _by_name(registry, "future")
    assert "incompatible plugin API" in future_info.error
    assert f"ESPER_PLUGIN_API = {esper_core.PLUGIN_API_VERSION + 1}" in future_info.error
    assert "pip install -U future-dist" in future_info.hint
    assert registry.names("blueprint") == ("current",)


def test_disable_plugins_switch_skips_named_plugins(plugin_site: PluginSite, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin_site.add("one-dist", "1.0", {"one": "one"}, {"one": RAISES_ON_IMPORT})
    plugin_site.add("two-dist", "1.0", {"two": "two"}, {"two": BLUEPRINT_PLUGIN.format(name="two_seed")})
    monkeypatch.setenv("ESPER_DISABLE_PLUGINS", "esper-grow, one")

    registry = load_registry(strict=True)  # the broken one is disabled, so strict mode has nothing to object to

    one = _by_name(registry, "one")
    assert one.disabled is not None and "ESPER_DISABLE_PLUGINS" in one.disabled and not one.broken
    assert registry.names("blueprint") == ("two_seed",)
    assert not any(name.endswith("one") for name in __import__("sys").modules if name.startswith(plugin_site.prefix))


def test_disable_autoload_keeps_only_the_builtin_distribution(
    plugin_site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in "esper-grow" distribution placed first on sys.path shadows the real one for this test.
    plugin_site.add("esper-grow", "0.0.1", {"core": "core"}, {"core": BLUEPRINT_PLUGIN.format(name="builtin_seed")})
    plugin_site.add("third-party", "1.0", {"extra": "extra"}, {"extra": BLUEPRINT_PLUGIN.format(name="extra_seed")})
    monkeypatch.delenv("ESPER_DISABLE_PLUGINS")
    monkeypatch.setenv("ESPER_DISABLE_PLUGIN_AUTOLOAD", "1")

    registry = load_registry()

    assert registry.names("blueprint") == ("builtin_seed",)
    extra = _by_name(registry, "extra")
    assert "ESPER_DISABLE_PLUGIN_AUTOLOAD" in extra.disabled
    monkeypatch.setenv("ESPER_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert load_registry().names("blueprint") == ("builtin_seed", "extra_seed")


def test_builtins_register_before_third_parties_whatever_the_path_order(
    plugin_site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_site.add("aaa-first", "1.0", {"aaa": "aaa"}, {"aaa": BLUEPRINT_PLUGIN.format(name="third_party")})
    plugin_site.add("esper-grow", "0.0.1", {"zzz": "zzz"}, {"zzz": BLUEPRINT_PLUGIN.format(name="builtin")})
    monkeypatch.delenv("ESPER_DISABLE_PLUGINS")
    assert load_registry().names("blueprint") == ("builtin", "third_party")


def test_trace_switch_prints_each_hook_call_and_result(plugin_site: PluginSite, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin_site.add("traced-dist", "1.0", {"traced": "traced"}, {"traced": BLUEPRINT_PLUGIN.format(name="traced")})
    monkeypatch.setenv("ESPER_TRACE_PLUGINS", "1")
    stream = io.StringIO()

    load_registry(trace_stream=stream)

    trace = stream.getvalue()
    assert "esper_blueprints() -> traced-dist:traced" in trace
    assert "esper_blueprints returned [[BlueprintSpec(name='traced'" in trace
    monkeypatch.setenv("ESPER_TRACE_PLUGINS", "0")
    quiet = io.StringIO()
    load_registry(trace_stream=quiet)
    assert quiet.getvalue() == ""


def test_trace_goes_to_stderr_by_default(
    plugin_site: PluginSite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_site.add("traced-dist", "1.0", {"traced": "traced"}, {"traced": BLUEPRINT_PLUGIN.format(name="traced")})
    monkeypatch.setenv("ESPER_TRACE_PLUGINS", "yes")
    load_registry()
    captured = capsys.readouterr()
    assert "[esper trace] esper_blueprints" in captured.err and captured.out == ""


def test_registries_are_independent_objects(plugin_site: PluginSite) -> None:
    plugin_site.add("a-dist", "1.0", {"a": "a"}, {"a": BLUEPRINT_PLUGIN.format(name="a_seed")})
    first = load_registry()
    plugin_site.add("b-dist", "1.0", {"b": "b"}, {"b": BLUEPRINT_PLUGIN.format(name="b_seed")})
    second = load_registry()
    assert first.names("blueprint") == ("a_seed",)
    assert second.names("blueprint") == ("a_seed", "b_seed")
