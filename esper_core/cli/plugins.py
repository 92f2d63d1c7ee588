"""``esper plugins``: every plugin, what it contributes per kind, and what is broken and how to fix it.

This command must work whatever the plugins do, so it always loads non-strictly and lists everything;
with ``--strict-plugins`` it still lists, then exits non-zero if anything is broken.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any, Iterable, Mapping

import click

from esper_core.cli.options import cli_state
from esper_core.plugins.registry import KINDS, PluginInfo

_HEADERS = ("PLUGIN", "DISTRIBUTION", "VERSION", "CONTRIBUTES")


def _status_lines(info: PluginInfo, show_traceback: bool) -> list[str]:
    if info.disabled:
        return [f"disabled ({info.disabled})"]
    if info.broken:
        lines = [f"BROKEN: {info.error}"]
        if info.hint:
            lines.append(f"hint: {info.hint}")
        if show_traceback and info.traceback:
            lines.extend(info.traceback.rstrip().splitlines())
        return lines
    lines = [f"{kind}: {', '.join(info.contributes[kind])}" for kind in KINDS if kind in info.contributes]
    return lines or ["(nothing; observer hooks only)"]


def render_table(plugins: Iterable[PluginInfo], show_traceback: bool = False) -> str:
    """A plain-text table; broken plugins are marked BROKEN with their error and hint."""
    rows = [
        ((info.name, info.distribution or "(in-process)", info.version or "-"), _status_lines(info, show_traceback))
        for info in plugins
    ]
    widths = [max([len(_HEADERS[i]), *(len(cells[i]) for cells, _ in rows)]) for i in range(3)]
    indent = " " * (sum(widths) + 2 * 3)

    def cells_text(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + "  "

    lines = [cells_text(_HEADERS[:3]) + _HEADERS[3]]
    for cells, status in rows:
        lines.append(cells_text(cells) + status[0])
        lines.extend(indent + extra for extra in status[1:])
    return "\n".join(line.rstrip() for line in lines)


#: Descriptions are wrapped to this width.
DESCRIPTION_WIDTH = 110


def descriptions(registry: Any, info: PluginInfo) -> dict[str, dict[str, str]]:
    """kind -> name -> the spec's description, for everything ``info`` contributed."""
    found: dict[str, dict[str, str]] = {}
    for kind, names in info.contributes.items():
        for name in names:
            try:
                found.setdefault(kind, {})[name] = str(registry.get(kind, name).description)
            except LookupError:  # a duplicate the registry refused: nothing to describe
                continue
    return found


def render_descriptions(described: Mapping[str, Mapping[str, str]]) -> str:
    """Every contribution by kind, each with its description (wrapped, indented under the name)."""
    lines: list[str] = []
    width = max((len(name) for entries in described.values() for name in entries), default=0)
    for kind in KINDS:
        entries = described.get(kind, {})
        if not entries:
            continue
        lines.append(kind)
        for name, text in entries.items():
            wrapped = textwrap.wrap(text, DESCRIPTION_WIDTH - width - 4, break_on_hyphens=False) or ["-"]
            lines.append(f"  {name.ljust(width)}  {wrapped[0]}")
            lines.extend(" " * (width + 4) + more for more in wrapped[1:])
    return "\n".join(lines)


def _summary(plugins: tuple[PluginInfo, ...]) -> str:
    broken = sum(info.broken for info in plugins)
    disabled = sum(info.disabled is not None for info in plugins)
    healthy = len(plugins) - broken - disabled
    text = f"{len(plugins)} plugin(s): {healthy} loaded, {broken} broken, {disabled} disabled"
    if broken:
        text += " (broken plugins are skipped; everything else works)"
    return text


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--traceback", "show_traceback", is_flag=True, help="Show the full traceback of broken plugins.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool, show_traceback: bool) -> None:
    """List installed plugins, what each contributes (with descriptions), and any that failed to load."""
    from esper_core.plugins.loader import load_registry

    registry = load_registry(strict=False)
    infos = registry.plugins
    if as_json:
        listed = [{**info.to_dict(), "descriptions": descriptions(registry, info)} for info in infos]
        click.echo(json.dumps(listed, indent=2))
    else:
        click.echo(render_table(infos, show_traceback))
        merged: dict[str, dict[str, str]] = {}
        for info in infos:
            for kind, entries in descriptions(registry, info).items():
                merged.setdefault(kind, {}).update(entries)
        if merged:
            click.echo()
            click.echo(render_descriptions(merged))
        click.echo()
        click.echo(_summary(infos))
    if cli_state(ctx).strict_plugins and registry.broken:
        names = ", ".join(info.name for info in registry.broken)
        raise click.ClickException(f"--strict-plugins: broken plugin(s): {names}")
