"""What every ``esper`` command shares: per-invocation state, the plugin registry, config flags.

The registry is loaded lazily, inside a command, so a broken plugin can never stop ``esper --help``.
Commands that take a configuration use ``config_options`` and ``config_from_params``, so ``esper run``,
``esper config show`` and friends resolve (and reject) a configuration identically.
"""

from __future__ import annotations

import json
import tomllib
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, TypeVar

import attrs
import click

from esper_core.cli.errors import ConfigUsageError
from esper_core.cli.errors import as_click_error as describe_as_click_error
from esper_core.config.sections import EsperConfig
from esper_core.config.loading import ConfigError, deep_merge, load_config
from esper_core.config.presets import PRESET_CHOICES
from esper_core.plugins.registry import preset_adjustments_of
from esper_core.run.checkpoint import CheckpointError
from esper_core.run.rundir import RunDirError
from esper_core.run.setup import SetupError

F = TypeVar("F", bound=Callable[..., Any])

#: Source label of flag values in config error messages.
COMMAND_LINE = "command line"


@attrs.define
class CliState:
    """Per-invocation state (lives in ``ctx.obj``): global flags, the registry once loaded, and the run
    directory a command works on (error messages point there: ``esper resume RUN_DIR``)."""

    strict_plugins: bool = False
    debug: bool = False
    registry: Any = None
    run_root: Any = None


def cli_state(ctx: click.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


#: Errors that are the user's situation, not a bug: shown as one message, exit code 1.
USER_ERRORS: tuple[type[BaseException], ...] = (
    SetupError, RunDirError, CheckpointError, LookupError, FileNotFoundError, ValueError,
)


def as_click_error(error: BaseException) -> click.ClickException:
    """A configuration problem exits 2 (usage), anything else exits 1; one message each, naming the plugin
    when a plugin's code raised (``esper_core.cli.errors.describe_failure``)."""
    ctx = click.get_current_context(silent=True)
    state = ctx.find_root().obj if ctx is not None else None
    return describe_as_click_error(
        error, registry=getattr(state, "registry", None), run_root=getattr(state, "run_root", None)
    )


def warn_broken(registry: Any) -> None:
    """One stderr line per broken plugin; the command goes on with the rest."""
    for info in registry.broken:
        click.echo(f"warning: {info.describe()} was skipped: {info.error}", err=True)
        if info.hint:
            click.echo(f"  hint: {info.hint}", err=True)


def registry_for(ctx: click.Context, warn: bool = True) -> Any:
    """The invocation's registry, loaded on first use (``--strict-plugins``: a broken plugin is fatal)."""
    from esper_core.plugins.loader import PluginLoadError, load_registry

    state = cli_state(ctx)
    if state.registry is None:
        try:
            state.registry = load_registry(strict=state.strict_plugins)
        except PluginLoadError as error:
            raise click.ClickException(f"{error}\n(--strict-plugins is set; run `esper plugins` for details)") from None
        if warn:
            warn_broken(state.registry)
    return state.registry


# ----------------------------------------------------------------------------------- overrides
#: Named flags shared by commands that build a configuration: option name -> config key path.
CONFIG_FLAGS: Mapping[str, tuple[str, type, str]] = MappingProxyType({
    "task": ("task.name", str, "Task plugin (auto: the best available one)."),
    "host": ("host.name", str, "Host network plugin."),
    "policy": ("policy.name", str, "Policy plugin (the controller)."),
    "reward": ("reward.name", str, "Reward plugin."),
    "seed": ("run.seed", int, "Random seed; a run is reproducible from it."),
    "envs": ("run.envs", int, "Environments (host copies) per round."),
    "rounds": ("run.rounds", int, "Rounds (an episode in every env, then one policy update)."),
    "episode_length": ("run.episode_length", int, "Env steps (host epochs) per episode."),
    "device": ("device.device", str, "Device: auto, cpu, cuda, cuda:1 ..."),
    "name": ("run.name", str, "Run directory name (default: a timestamp)."),
    "run_dir": ("run.run_dir", str, "Directory that holds run directories."),
    "data_dir": ("task.data_dir", str, "Directory with datasets."),
})


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON (``3``, ``0.2``, ``true``, ``null``, ``[3, 5]``), else a TOML value, else text."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str) -> dict[str, Any]:
    """``ppo.clip_ratio=0.3`` -> ``{"ppo": {"clip_ratio": 0.3}}``."""
    key, separator, raw = text.partition("=")
    parts = key.strip().split(".")
    if not separator or not all(part.strip() for part in parts):
        raise click.BadParameter(f"expected KEY=VALUE with a dotted key such as ppo.clip_ratio=0.3, got {text!r}")
    tree: dict[str, Any] = {parts[-1].strip(): parse_value(raw.strip())}
    for part in reversed(parts[:-1]):
        tree = {part.strip(): tree}
    return tree


def nested_override(key_path: str, value: Any) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    cursor = tree
    parts = key_path.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return tree


def overrides_from_cli(flags: Mapping[str, Any], assignments: Iterable[str] = ()) -> dict[str, Any]:
    """Named flags (``CONFIG_FLAGS``; None = not given) then ``--set`` assignments, as one nested dict.

    ``--set`` comes last, so it wins over a named flag for the same key.
    """
    overrides: dict[str, Any] = {}
    for option, value in flags.items():
        if option in CONFIG_FLAGS and value is not None:
            overrides = deep_merge(overrides, nested_override(CONFIG_FLAGS[option][0], value))
    for assignment in assignments:
        overrides = deep_merge(overrides, parse_assignment(assignment))
    return overrides


def config_options(command: F) -> F:
    """``--config``, ``--preset``, ``--set`` and the named ``CONFIG_FLAGS`` options."""
    for option, (key_path, kind, help_text) in reversed(list(CONFIG_FLAGS.items())):
        flag = "--" + option.replace("_", "-")
        command = click.option(flag, option, type=kind, default=None, help=f"{help_text} [{key_path}]")(command)
    command = click.option(
        "--set",
        "assignments",
        metavar="KEY=VALUE",
        multiple=True,
        help="Override any setting, e.g. --set ppo.clip_ratio=0.3 (values parse as JSON/TOML, else text).",
    )(command)
    command = click.option(
        "--preset",
        type=click.Choice(PRESET_CHOICES),
        default=None,
        help="Sizing preset (default: run.preset from the file, else auto = cpu-quick or gpu).",
    )(command)
    command = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=str),
        default=None,
        help="Config file (.toml or .json); flags win over it.",
    )(command)
    return command


def config_from_params(params: Mapping[str, Any], registry: Any = None) -> EsperConfig:
    """Resolve the configuration from a command's parameters; a bad one exits non-zero naming key and file.

    With ``registry``, the chosen host's adjustments to the preset apply (``HostSpec.preset_adjustments``);
    every command that runs or shows a configuration passes it, so they resolve the same one."""
    flags = {option: params.get(option) for option in CONFIG_FLAGS}
    try:
        overrides = overrides_from_cli(flags, params.get("assignments") or ())
        return load_config(
            params.get("config_path"), overrides or None, params.get("preset"), overrides_source=COMMAND_LINE,
            preset_adjustments=None if registry is None else preset_adjustments_of(registry),
        )
    except ConfigError as error:
        raise ConfigUsageError(str(error)) from None
