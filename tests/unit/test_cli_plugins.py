"""`esper plugins`: a readable table and a JSON list; broken plugins are marked, never fatal unless strict."""

from __future__ import annotations

import json

from click.testing import CliRunner
from support.plugin_dists import BLUEPRINT_PLUGIN, RAISES_ON_IMPORT, PluginSite, plugin_site  # noqa: F401

from esper_core.cli import main
from esper_core.cli.plugins import render_descriptions, render_table
from esper_core.plugins.registry import PluginInfo


def _site_with_a_broken_and_a_good_plugin(site: PluginSite) -> None:
    site.add("aaa-broken", "0.3", {"broken": "broken"}, {"broken": RAISES_ON_IMPORT})
    site.add("zzz-good", "1.2", {"good": "good"}, {"good": BLUEPRINT_PLUGIN.format(name="good_seed")})


def test_json_lists_broken_and_healthy_plugins(plugin_site: PluginSite) -> None:
    _site_with_a_broken_and_a_good_plugin(plugin_site)
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = {item["plugin"]: item for item in json.loads(result.stdout)}
    broken, good = listed["broken"], listed["good"]
    assert {"plugin", "distribution", "version", "contributes", "error"} <= set(broken)
    assert (broken["distribution"], broken["version"], broken["contributes"]) == ("aaa-broken", "0.3", {})
    assert "broken on purpose" in broken["error"] and "pip uninstall aaa-broken" in broken["hint"]
    assert (good["distribution"], good["version"], good["error"]) == ("zzz-good", "1.2", None)
    assert good["contributes"] == {"blueprint": ["good_seed"]}
    assert all(listed[name]["disabled"] for name in listed if name not in {"broken", "good"})  # the built-ins


def test_table_marks_broken_plugins_with_their_hint(plugin_site: PluginSite) -> None:
    _site_with_a_broken_and_a_good_plugin(plugin_site)
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "CONTRIBUTES"]
    broken_line = next(line for line in lines if line.startswith("broken "))
    assert "aaa-broken" in broken_line and "0.3" in broken_line and "BROKEN: failed to import" in broken_line
    assert any("hint: pip uninstall aaa-broken" in line for line in lines)
    assert any(line.startswith("good ") and "blueprint: good_seed" in line for line in lines)
    assert "1 broken" in lines[-1]


def test_traceback_flag_shows_where_it_broke(plugin_site: PluginSite) -> None:
    _site_with_a_broken_and_a_good_plugin(plugin_site)
    result = CliRunner().invoke(main, ["plugins", "--traceback"])
    assert "Traceback (most recent call last)" in result.stdout


def test_strict_plugins_still_lists_then_fails(plugin_site: PluginSite) -> None:
    _site_with_a_broken_and_a_good_plugin(plugin_site)
    result = CliRunner().invoke(main, ["--strict-plugins", "plugins", "--json"])
    assert result.exit_code == 1
    assert {item["plugin"] for item in json.loads(result.stdout)} >= {"broken", "good"}
    assert "--strict-plugins: broken plugin(s): broken" in result.stderr


def test_strict_plugins_passes_when_everything_loads(plugin_site: PluginSite) -> None:
    plugin_site.add("zzz-good", "1.2", {"good": "good"}, {"good": BLUEPRINT_PLUGIN.format(name="good_seed")})
    assert CliRunner().invoke(main, ["--strict-plugins", "plugins"]).exit_code == 0


def test_render_table_aligns_columns_and_shows_every_kind() -> None:
    infos = [
        PluginInfo(name="a", distribution="d", version="1", contributes={"task": ["t1", "t2"], "policy": ["p"]}),
        PluginInfo(name="longer_name", distribution=None, version=None, contributes={}),
        PluginInfo(name="off", distribution="x", version="2", disabled="disabled by ESPER_DISABLE_PLUGINS"),
    ]
    lines = render_table(infos).splitlines()
    column = lines[0].index("CONTRIBUTES")
    assert lines[1][column:] == "task: t1, t2"
    assert lines[2][column:] == "policy: p"
    assert lines[3].startswith("longer_name") and "(in-process)" in lines[3]
    assert "disabled (disabled by ESPER_DISABLE_PLUGINS)" in lines[4]


def test_descriptions_are_listed_by_kind_in_the_table_and_the_json(plugin_site: PluginSite) -> None:
    _site_with_a_broken_and_a_good_plugin(plugin_site)
    table = CliRunner().invoke(main, ["plugins"]).stdout.splitlines()
    at = table.index("blueprint")
    assert table[at + 1].split(None, 1) == ["good_seed", "test blueprint"]
    listed = {item["plugin"]: item for item in json.loads(CliRunner().invoke(main, ["plugins", "--json"]).stdout)}
    assert listed["good"]["descriptions"] == {"blueprint": {"good_seed": "test blueprint"}}
    assert listed["broken"]["descriptions"] == {}


def test_long_descriptions_wrap_under_their_name() -> None:
    text = render_descriptions({"policy": {"p": "word " * 40}, "task": {"longer_name": "short"}})
    lines = text.splitlines()
    assert lines[0] == "task" and lines[2] == "policy"  # kinds in their order, whatever the input order
    assert lines[1] == "  longer_name  short"
    assert lines[3].startswith("  p            word") and lines[4].startswith(" " * 15 + "word")
    assert all(len(line) <= 110 for line in lines)
