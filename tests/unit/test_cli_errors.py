"""``describe_failure``: the one-paragraph message and exit code for each kind of failure that reaches the
CLI's boundary (issue 13), and atomic JSON writes that leave nothing behind when the disk is full."""

from __future__ import annotations

import errno
import os

import pytest

from esper_core import DISTRIBUTION, __version__
from esper_core.cli.errors import EXIT_USAGE, describe_failure
from esper_core.config.loading import load_config
from esper_core.config.loading import ConfigError
from esper_core.data import DatasetFormatError
from esper_core.run.rundir import write_json_atomic
from esper_core.validators import IncompatibleSettings, SettingError


def _config_error() -> ConfigError:
    try:
        load_config(overrides={"run": {"rounds": 0}})
    except ConfigError as error:
        return error
    raise AssertionError("expected a ConfigError")


@pytest.mark.parametrize(
    "error, fragments, code",
    [
        (_config_error(), ["run.rounds"], EXIT_USAGE),
        # Checked when a plugin is built rather than when the config loads (the scripted policy's plan): still
        # a usage error, as the same mistake caught at load time is.
        (SettingError("policy.options", "plan", "blueprint 'x' does not fit slot 'r0c0'", "r0c0:x"),
         ["policy.options.plan: blueprint 'x' does not fit"], EXIT_USAGE),
        (OSError(errno.ENOSPC, "No space left on device", "/runs/x/events.jsonl"), ["/runs/x/events.jsonl", "free some space"], 1),
        (OSError(errno.EACCES, "Permission denied", "/runs/x"), ["Permission denied", "directory you own"], 1),
        (OSError(errno.ENAMETOOLONG, "File name too long", "/runs/xxx"), ["File name too long", "shorter name"], 1),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro"), ["read-only", "writable location"], 1),
        (MemoryError(), ["out of memory", "lower the sizes"], 1),
        (DatasetFormatError("/data/x.npz: array 'y_train' holds label 7"), ["/data/x.npz: array 'y_train'"], 1),
        (ValueError("actions.blueprints: unknown blueprint(s) ['nope']"), ["actions.blueprints: unknown"], 1),
        (AttributeError("'NoneType' object has no attribute 'x'"), ["internal error: AttributeError", "--debug"], 1),
    ],
)
def test_every_failure_is_one_message_with_the_culprit_and_the_fix(error, fragments, code):
    message, exit_code = describe_failure(error, run_root="/runs/x")
    assert exit_code == code
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in message


def test_the_resume_hint_appears_only_where_there_is_a_run_to_resume():
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/events.jsonl")
    assert "esper resume /runs/x" in describe_failure(full, run_root="/runs/x")[0]
    assert "esper resume" not in describe_failure(full)[0]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"status": "old"})

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as error:
        write_json_atomic(path, {"status": "new"})
    assert error.value.filename == str(path)  # the message can say which file
    assert path.read_text().strip().endswith("}") and '"old"' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failure_inside_a_builtin_plugin_asks_for_a_report_not_an_uninstall():
    from esper_core.plugins import load_registry

    registry = load_registry()
    # A function whose frame belongs to a built-in plugin package, as a bug there would look.
    namespace = {"__name__": "esper_rewards.sparse"}
    exec(compile("def fail():\n    raise RuntimeError('built-in bug')\n", "esper_rewards/sparse.py", "exec"), namespace)
    with pytest.raises(RuntimeError) as error:
        namespace["fail"]()
    message, code = describe_failure(error.value, registry=registry)
    assert code == 1 and "RuntimeError: built-in bug" in message
    assert "please report it" in message and "pip uninstall" not in message


def _raised_in_plugin(source: str, module: str = "esper_hosts.gpt") -> BaseException:
    """The exception ``source`` (the body of a function) raises, its frame in a built-in plugin's module."""
    namespace = {"__name__": module, "IncompatibleSettings": IncompatibleSettings}
    body = "".join(f"    {line}\n" for line in source.splitlines())
    exec(compile(f"def fail():\n{body}", module.replace(".", "/") + ".py", "exec"), namespace)
    try:
        namespace["fail"]()
    except BaseException as error:  # noqa: BLE001 - the test inspects whatever it raised
        return error
    raise AssertionError("expected the plugin code to raise")


REFUSAL = "host 'gpt' reads token sequences, but task 'synthetic' gives images; choose a sequence task"


def test_settings_a_plugin_refuses_are_a_usage_error_naming_the_plugin_not_a_plugin_bug():
    from esper_core.plugins import load_registry

    message, code = describe_failure(_raised_in_plugin(f"raise IncompatibleSettings({REFUSAL!r})"), registry=load_registry())
    assert code == EXIT_USAGE
    assert message == f"plugin 'hosts' (distribution {DISTRIBUTION} {__version__}) refused these settings: {REFUSAL}"
    for advice in ("problem in that plugin", "ESPER_DISABLE_PLUGINS", "report it", "--debug", "failed:"):
        assert advice not in message


def test_an_ordinary_error_from_the_same_plugin_is_still_that_plugin_s_problem():
    from esper_core.plugins import load_registry

    message, code = describe_failure(_raised_in_plugin(f"raise ValueError({REFUSAL!r})"), registry=load_registry())
    assert code == 1
    assert "plugin 'hosts'" in message and f"ValueError: {REFUSAL}" in message
    assert "problem in that plugin" in message and "ESPER_DISABLE_PLUGINS=hosts" in message


def test_a_refusal_behind_another_error_still_counts_unless_it_was_hidden_with_from_none():
    from esper_core.plugins import load_registry

    registry = load_registry()
    wrapped = _raised_in_plugin(
        f"try:\n    raise IncompatibleSettings({REFUSAL!r})\nexcept ValueError as e:\n    raise RuntimeError('env 0') from e"
    )
    message, code = describe_failure(wrapped, registry=registry)
    assert code == EXIT_USAGE and "refused these settings: " + REFUSAL in message
    hidden = _raised_in_plugin(
        f"try:\n    raise IncompatibleSettings({REFUSAL!r})\nexcept ValueError:\n    raise RuntimeError('own bug') from None"
    )
    message, code = describe_failure(hidden, registry=registry)
    assert code == 1 and "RuntimeError: own bug" in message and "problem in that plugin" in message


def test_a_refusal_outside_any_plugin_is_shown_as_it_is():
    assert describe_failure(IncompatibleSettings(REFUSAL)) == (REFUSAL, EXIT_USAGE)
