"""One error boundary (issue 13): whatever goes wrong below ``esper`` (a plugin raising or calling
``sys.exit`` inside a hook, a blueprint breaking its contract, memory running out, an esper bug) ends in one
paragraph naming the culprit (plugin and distribution, file, key) and the fix: exit 1 (2 for a bad
configuration), no traceback unless ``esper --debug``. Plugins are real installed distributions here, so
the message can name them as a user would see them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from support.plugin_dists import PluginSite, plugin_site  # noqa: F401
from support.run_configs import write_config

from esper_core.cli import main

RUN = {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 3, "rounds": 1, "envs": 1}}

HALVES_BLUEPRINT = """
from torch import nn
from esper_core.hookspecs import hookimpl
from esper_core.specs import BlueprintSpec

class Halves(nn.Module):
    def __init__(self, channels, spatial):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)

@hookimpl
def esper_blueprints():
    return [BlueprintSpec(name="halves", description="breaks the shape contract", factory=Halves)]
"""

FAILING_REWARD = """
from esper_core.hookspecs import hookimpl
from esper_core.specs import RewardSpec

class Boom:
    def reset(self):
        pass

    def __call__(self, inputs):
        return 1 / 0, {}

@hookimpl
def esper_rewards():
    return [RewardSpec(name="boom", description="divides by zero", factory=lambda options: Boom())]
"""

EXITING_HOOK = """
import sys
from esper_core.hookspecs import hookimpl

@hookimpl
def esper_blueprints():
    sys.exit(2)
"""

EXITING_OBSERVER = """
import sys
from esper_core.hookspecs import hookimpl

@hookimpl
def esper_on_event(event):
    if event["type"] == "round_end":
        sys.exit(5)
"""


@pytest.fixture
def site(plugin_site: PluginSite, monkeypatch: pytest.MonkeyPatch) -> PluginSite:
    monkeypatch.setenv("ESPER_DISABLE_PLUGINS", "")  # the built-ins too: a run needs a task and a host
    return plugin_site


def _invoke(args: list[str]):
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output, result.output
    return result


def _run_args(tmp_path, *extra: str) -> list[str]:
    return ["run", "--config", str(write_config(tmp_path, RUN)), "--run-dir", str(tmp_path), *extra]


def test_strict_plugins_checks_blueprint_contracts_before_the_run_starts(tmp_path, site):
    site.add("bad-blueprints", "0.1", {"halves": "halves"}, {"halves": HALVES_BLUEPRINT})
    result = _invoke(["--strict-plugins", *_run_args(tmp_path, "--name", "strict", "--blueprints", "halves,conv_light")])
    assert result.exit_code == 1
    assert "blueprint 'halves' from plugin 'halves' (distribution bad-blueprints 0.1) at slot" in result.output
    assert "maps (2," in result.output and "conv_light" not in result.output.split("problem(s)")[1].split("Fix")[0]
    assert not (tmp_path / "strict").exists()  # refused before anything was written


def test_without_strict_the_broken_blueprint_is_disabled_and_the_run_completes(tmp_path, site):
    site.add("bad-blueprints", "0.1", {"halves": "halves"}, {"halves": HALVES_BLUEPRINT})
    args = _run_args(tmp_path, "--name", "lenient", "--blueprints", "halves", "--set", "run.episode_length=6")
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    # Only 'halves' is enabled: the random policy germinates it at its first chance, then cannot any more.
    assert "blueprint 'halves' from plugin 'halves' (distribution bad-blueprints 0.1) broke its contract" in result.output
    assert "disabled for the rest of this run" in result.output


def test_a_plugin_raising_inside_a_run_is_named_with_its_distribution_and_the_fix(tmp_path, site):
    site.add("boom-rewards", "2.0", {"boom": "boom"}, {"boom": FAILING_REWARD})
    result = _invoke(_run_args(tmp_path, "--name", "boom", "--reward", "boom"))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "plugin 'boom' (distribution boom-rewards 2.0) failed: ZeroDivisionError" in text
    assert "pip uninstall boom-rewards" in text and "ESPER_DISABLE_PLUGINS=boom" in text
    assert f"esper resume {tmp_path / 'boom'}" in text


def test_debug_shows_the_real_exception(tmp_path, site):
    site.add("boom-rewards", "2.0", {"boom": "boom"}, {"boom": FAILING_REWARD})
    result = CliRunner().invoke(main, ["--debug", *_run_args(tmp_path, "--name", "boom", "--reward", "boom")])
    assert isinstance(result.exception, ZeroDivisionError)


def test_a_hook_calling_sys_exit_is_a_broken_plugin_not_the_end_of_esper(tmp_path, site):
    site.add("exits", "0.3", {"exits": "exits"}, {"exits": EXITING_HOOK})
    result = _invoke(["plugins", "--json"])
    assert result.exit_code == 0
    listed = {item["plugin"]: item for item in json.loads(result.stdout)}
    assert "SystemExit" in listed["exits"]["error"]


def test_an_observer_calling_sys_exit_does_not_stop_the_run(tmp_path, site):
    site.add("exiting-observer", "0.1", {"watcher": "watcher"}, {"watcher": EXITING_OBSERVER})
    result = _invoke(_run_args(tmp_path, "--name", "watched"))
    assert result.exit_code == 0, result.output
    assert "esper_on_event hook failed" in result.output and "SystemExit" in result.output


def test_running_out_of_memory_is_a_message_with_what_to_lower(tmp_path, monkeypatch):
    def exhausted(self, *args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:116] . DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr("esper_core.run.runner.Runner.run", exhausted)
    result = _invoke(_run_args(tmp_path, "--name", "oom"))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "out of memory" in text and "68719476736 bytes" in text and "GiB of memory free" in text
    assert "policy.options.lstm_dim" in text


def test_an_esper_bug_is_called_one_and_points_to_debug(tmp_path, monkeypatch):
    def bug(self, *args, **kwargs):
        raise KeyError("a missing key esper should have had")

    monkeypatch.setattr("esper_core.run.runner.Runner.run", bug)
    result = _invoke(_run_args(tmp_path, "--name", "bug"))
    assert result.exit_code == 1
    assert "a missing key esper should have had" in result.output


def test_an_unexpected_error_type_is_reported_as_an_internal_error(tmp_path, monkeypatch):
    def bug(self, *args, **kwargs):
        raise ZeroDivisionError("esper divided by zero")

    monkeypatch.setattr("esper_core.run.runner.Runner.run", bug)
    result = _invoke(_run_args(tmp_path, "--name", "bug"))
    assert result.exit_code == 1
    assert "internal error: ZeroDivisionError: esper divided by zero" in result.output and "--debug" in result.output


EXITING_REWARD = FAILING_REWARD.replace("return 1 / 0, {}", "import sys; sys.exit(4)").replace('"boom"', '"quits"')


def test_a_plugin_calling_sys_exit_mid_run_is_named_not_obeyed(tmp_path, site):
    site.add("quitting-rewards", "1.1", {"quits": "quits"}, {"quits": EXITING_REWARD})
    result = _invoke(_run_args(tmp_path, "--name", "quits", "--reward", "quits"))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "plugin 'quits' (distribution quitting-rewards 1.1) called sys.exit(4)" in text
    assert "pip uninstall quitting-rewards" in text


REFUSED_SETTINGS = {
    "gpt with an image task": (
        ("--host", "gpt", "--task", "synthetic"),
        "plugin 'hosts' (distribution esper-grow", "host 'gpt' reads token sequences, but task 'synthetic' gives images; "
        "choose a sequence task",
    ),
    "heuristic tempo outside actions.tempos": (
        ("--policy", "heuristic", "--task", "synthetic", "--set", "policy.options.tempo=7"),
        "plugin 'policies' (distribution esper-grow", "heuristic policy option policy.options.tempo=7 is not in the action "
        "space; choose from",
    ),
}


@pytest.mark.parametrize("flags, plugin, refusal", REFUSED_SETTINGS.values(), ids=list(REFUSED_SETTINGS))
def test_settings_a_plugin_refuses_are_a_usage_error_not_a_plugin_bug(tmp_path, flags, plugin, refusal):
    result = _invoke(_run_args(tmp_path, "--name", "refused", *flags))
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert plugin in text and f"refused these settings: {refusal}" in text
    assert "problem in that plugin" not in text and "ESPER_DISABLE_PLUGINS" not in text and "report it" not in text
    assert not (tmp_path / "refused").exists()
