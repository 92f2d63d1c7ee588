"""Plain configuration data as TOML with each setting's help as a comment above it: what `esper config show`
prints and what a run writes to ``runs/NAME/config.toml`` (one renderer, so the two read alike).

Why our own writer: ``tomllib`` only reads, and the comments are the point (a reader sees every setting's
help beside its value). Values with no TOML spelling (None) are written as comments.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from typing import Any, Mapping

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
                lines.append(f"# {_key(key)}: unset (null; TOML has no null, so loading this file gives the default)")
        if path and (scalars or not tables):
            lines.append("")
        for key, value in tables:
            table([*path, key], value, notes.get(key, ""))

    table([], tree)
    return "\n".join(lines).rstrip() + "\n"
