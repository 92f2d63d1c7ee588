"""``esper config show``: the configuration a run would use, resolved exactly as ``esper run`` resolves it:
``task = "auto"`` resolved, every chosen plugin's options checked and shown in full with their defaults,
and every setting's one-line help as a TOML comment above it.

The TOML output can be saved and passed back with ``--config``; settings that are unset (None) have no TOML
spelling and are written as comments (use ``--json`` to see them as ``null``).
"""

from __future__ import annotations

import json
from typing import Any

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
from esper_core.run.config_document import config_toml


@click.group("config")
def config_group() -> None:
    """Inspect configurations (defaults < preset < the host's adjustments to it < --config file < flags)."""


@config_group.command("show")
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_context
def show_command(ctx: click.Context, as_json: bool, **params: Any) -> None:
    """Print the resolved configuration with every chosen plugin's options and their defaults (TOML with
    one comment of help per setting); a bad file, flag or plugin option fails exactly as `esper run` would."""
    cfg = config_from_params(params, registry_for(ctx))
    try:
        view = config_view(cfg, registry_for(ctx))
    except ConfigError as error:
        raise ConfigUsageError(str(error)) from None
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    if as_json:
        click.echo(json.dumps(view.data, indent=2))
        return
    title = f"esper configuration (preset {cfg.run.preset}); pass a saved copy back with --config FILE.toml"
    click.echo(config_toml(view, title, registry_for(ctx)), nl=False)
