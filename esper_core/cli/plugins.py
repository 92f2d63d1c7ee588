"""``esper plugins``: every plugin, what it contributes per kind, and what is broken and how to fix it.

This command must work whatever the plugins do, so it always loads non-strictly and lists everything;
with ``--strict-plugins`` it still lists, then exits non-zero if anything is broken.
"""

from __future__ import annotations

import json
from typing import Iterable

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
    """List installed plugins, what each contributes, and any that failed to load."""
    from esper_core.plugins.loader import load_registry

    registry = load_registry(strict=False)
    infos = registry.plugins
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
    else:
        click.echo(render_table(infos, show_traceback))
        click.echo()
        click.echo(_summary(infos))
    if cli_state(ctx).strict_plugins and registry.broken:
        names = ", ".join(info.name for info in registry.broken)
        raise click.ClickException(f"--strict-plugins: broken plugin(s): {names}")
