"""``esper config show``: the configuration a run would use, resolved exactly as ``esper run`` resolves it.

The TOML output can be saved and passed back with ``--config``; settings that are unset (None) have no TOML
spelling and are written as comments (use ``--json`` to see them as ``null``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

import click

from esper_core.cli.options import config_from_params, config_options
from esper_core.config.loading import config_to_dict

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


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


def to_toml(tree: Mapping[str, Any]) -> str:
    """Render a nested dict of plain data as TOML: one ``[table]`` per mapping, scalars first."""
    lines: list[str] = []

    def table(path: list[str], mapping: Mapping[str, Any]) -> None:
        scalars = [(k, v) for k, v in mapping.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in mapping.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            lines.append(f"[{'.'.join(_key(part) for part in path)}]")
        for key, value in scalars:
            try:
                lines.append(f"{_key(key)} = {_value(value)}")
            except _NotTomlable:
                lines.append(f"# {_key(key)}: unset (null in --json output)")
        if path and (scalars or not tables):
            lines.append("")
        for key, value in tables:
            table([*path, key], value)

    table([], tree)
    return "\n".join(lines).rstrip() + "\n"


@click.group("config")
def config_group() -> None:
    """Inspect configurations (defaults < preset < --config file < flags)."""


@config_group.command("show")
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
def show_command(as_json: bool, **params: Any) -> None:
    """Print the resolved configuration; a bad file or flag fails exactly as `esper run` would."""
    cfg = config_from_params(params)
    data = config_to_dict(cfg)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"# esper configuration (preset {cfg.run.preset}); pass a saved copy back with --config FILE.toml")
    click.echo(to_toml(data), nl=False)
