"""``esper config show``: the configuration a run would use, resolved exactly as ``esper run`` resolves it:
``task = "auto"`` resolved, every chosen plugin's options checked and shown in full with their defaults,
and every setting's one-line help as a TOML comment above it.

The TOML output can be saved and passed back with ``--config``; settings that are unset (None) have no TOML
spelling and are written as comments (use ``--json`` to see them as ``null``).
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from typing import Any, Mapping

import click

from esper_core.cli.config_view import config_view
from esper_core.cli.options import (
    USER_ERRORS,
    ConfigUsageError,
    as_click_error,
    config_from_params,
    config_options,
    registry_for,
)
from esper_core.config.loading import ConfigError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
#: Help comments are wrapped to this width.
COMMENT_WIDTH = 100


class _NotTomlable(ValueError):
    """A value with no TOML spelling (None inside an array or inline table)."""


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if value is None:
        raise _NotTomlable
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise _NotTomlable


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, COMMENT_WIDTH - 2, initial_indent="# ", subsequent_indent="# ") if text else []


def to_toml(tree: Mapping[str, Any], help: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Render a nested dict of plain data as TOML: one ``[table]`` per mapping, scalars first. ``help``
    (table path -> key -> text) puts each key's help as a comment above it (above a sub-table's header)."""
    help = help or {}
    lines: list[str] = []

    def table(path: list[str], mapping: Mapping[str, Any], note: str = "") -> None:
        dotted = ".".join(path)
        notes = help.get(dotted, {})
        scalars = [(k, v) for k, v in mapping.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in mapping.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            lines.extend(_comment(note))
            lines.append(f"[{'.'.join(_key(part) for part in path)}]")
            if not mapping:
                lines.append("# (empty)")
        for key, value in scalars:
            lines.extend(_comment(notes.get(key, "")))
            try:
                lines.append(f"{_key(key)} = {_value(value)}")
            except _NotTomlable:
                lines.append(f"# {_key(key)}: unset (null in --json output)")
        if path and (scalars or not tables):
            lines.append("")
        for key, value in tables:
            table([*path, key], value, notes.get(key, ""))

    table([], tree)
    return "\n".join(lines).rstrip() + "\n"


@click.group("config")
def config_group() -> None:
    """Inspect configurations (defaults < preset < --config file < flags)."""


@config_group.command("show")
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_context
def show_command(ctx: click.Context, as_json: bool, **params: Any) -> None:
    """Print the resolved configuration with every chosen plugin's options and their defaults (TOML with
    one comment of help per setting); a bad file, flag or plugin option fails exactly as `esper run` would."""
    cfg = config_from_params(params)
    try:
        view = config_view(cfg, registry_for(ctx))
    except ConfigError as error:
        raise ConfigUsageError(str(error)) from None
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    if as_json:
        click.echo(json.dumps(view.data, indent=2))
        return
    click.echo(f"# esper configuration (preset {cfg.run.preset}); pass a saved copy back with --config FILE.toml")
    for note in view.notes:
        click.echo(f"# {note}")
    click.echo(to_toml(view.data, view.help), nl=False)
