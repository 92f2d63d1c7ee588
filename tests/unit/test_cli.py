"""The top-level command: help and version never load plugins; the console script works end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from support.plugin_dists import BLUEPRINT_PLUGIN, RAISES_ON_IMPORT, PluginSite, plugin_site  # noqa: F401

import esper_core
from esper_core.cli import main


def test_help_lists_the_commands_and_the_global_flag() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for word in ("plugins", "config", "--strict-plugins", "--version"):
        assert word in result.output


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"esper {esper_core.__version__} (plugin API {esper_core.PLUGIN_API_VERSION})"


def test_help_never_imports_a_plugin_even_a_broken_one(plugin_site: PluginSite) -> None:
    plugin_site.add("bad-dist", "0.1", {"bad": "bad"}, {"bad": RAISES_ON_IMPORT})
    for args in (["--help"], ["plugins", "--help"], ["config", "show", "--help"], ["--version"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    assert plugin_site.module("bad") not in sys.modules


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("esper")
    return [str(script)] if script.exists() else [sys.executable, "-m", "esper_core.cli"]


def test_console_script_lists_a_broken_plugin_beside_a_healthy_one(plugin_site: PluginSite) -> None:
    plugin_site.add("aaa-broken", "0.3", {"broken": "broken"}, {"broken": RAISES_ON_IMPORT})
    plugin_site.add("zzz-good", "1.0", {"good": "good"}, {"good": BLUEPRINT_PLUGIN.format(name="good_seed")})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site.root), *sys.path])}

    done = subprocess.run(
        [*_console_script(), "plugins", "--json"], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )

    assert done.returncode == 0, done.stderr
    listed = {item["plugin"]: item for item in json.loads(done.stdout)}
    assert "RuntimeError: this plugin is broken on purpose" in listed["broken"]["error"]
    assert listed["good"]["contributes"] == {"blueprint": ["good_seed"]} and listed["good"]["error"] is None


def test_builtin_tasks_are_listed_with_distribution_esper() -> None:
    """Depends on the built-in task plugin being healthy."""
    result = CliRunner().invoke(main, ["plugins", "--json"], env={"ESPER_DISABLE_PLUGINS": ""})
    assert result.exit_code == 0, result.output
    tasks = [item for item in json.loads(result.stdout) if "task" in item["contributes"]]
    assert any(
        item["distribution"] == "esper-grow" and {"synthetic", "cifar10", "npz"} <= set(item["contributes"]["task"])
        for item in tasks
    ), tasks
