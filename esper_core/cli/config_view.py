"""The configuration a run would really use: ``task = "auto"`` resolved, every chosen plugin's options
structured exactly as ``build_run`` structures them (so an unknown or bad option fails here as it would
there) and written out in full with their defaults, plus the one-line help of every setting.

Why a view and not the raw config: a config that leaves ``[policy.options]`` empty still runs with some 40
ppo_v2 settings, and docs send readers to ``esper config show`` to find them.
"""

from __future__ import annotations

from typing import Any

import attrs

from esper_core.config.converter import CONVERTER
from esper_core.config.loading import ConfigError, config_to_dict, structure_options
from esper_core.config.sections import EsperConfig
from esper_core.run.observers import observer_options
from esper_core.run.setup import resolve_task
from esper_core.validators import setting_help

#: Sections whose ``options`` table belongs to the chosen plugin of that kind.
PLUGIN_SECTIONS: tuple[str, ...] = ("task", "host", "policy", "reward")


@attrs.frozen
class ConfigView:
    """``data``: the config as plain data, task resolved and plugin options in full; ``help``: table path
    (``run``, ``policy.options``, ``observers.options.tensorboard``) -> field -> help; ``notes``: what
    was resolved (``task auto -> synthetic``)."""

    data: dict[str, Any]
    help: dict[str, dict[str, str]]
    notes: tuple[str, ...]


def plain_options(options: Any) -> dict[str, Any]:
    """An options object as the plain table that structures back into an equal object."""
    return config_to_dict(options) if attrs.has(type(options)) else {}


def _specs(cfg: EsperConfig, registry: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    task = resolve_task(registry, cfg.task)
    specs = {"task": task.spec}
    for kind in PLUGIN_SECTIONS[1:]:
        specs[kind] = registry.get(kind, getattr(cfg, kind).name)
    notes = (task.notice.split(";")[0],) if task.notice else ()
    return specs, notes


def _check_action_plugins(cfg: EsperConfig, registry: Any) -> None:
    """``actions.blueprints`` / ``actions.blend_styles`` must name registered plugins (as a run requires)."""
    for key, kind, names in (
        ("actions.blueprints", "blueprint", cfg.actions.blueprints),
        ("actions.blend_styles", "blend_style", cfg.actions.blend_styles),
    ):
        for name in names or ():
            registry.get(kind, name)  # UnknownPluginError names the known ones and close matches


def config_view(cfg: EsperConfig, registry: Any) -> ConfigView:
    """The view of ``cfg`` (see the module doc). Raises ``ConfigError`` listing every bad plugin option,
    ``UnknownPluginError`` for a plugin name nothing registers."""
    specs, notes = _specs(cfg, registry)
    _check_action_plugins(cfg, registry)
    data = config_to_dict(cfg)
    help_tables = {section: setting_help(type(getattr(cfg, section))) for section in data}
    problems = []
    for kind, spec in specs.items():
        key_path = f"{kind}.options"
        given = dict(getattr(cfg, kind).options)
        if kind == "task" and cfg.task.download and "download" in attrs.fields_dict(spec.options_type):
            given.setdefault("download", True)  # as build_run passes task.download on
        try:
            options = structure_options(spec, given, key_path)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        data[kind]["options"] = plain_options(options)
        help_tables[key_path] = setting_help(spec.options_type)
    data["task"]["name"] = specs["task"].name
    try:
        observed = observer_options(registry, cfg.observers)
    except ConfigError as error:
        problems.extend(error.problems)
        observed = {}
    for name, options in observed.items():
        data["observers"]["options"][name] = plain_options(options)
        help_tables[f"observers.options.{name}"] = setting_help(registry.get("observer", name).options_type)
    if problems:
        raise ConfigError(problems)
    return ConfigView(data=data, help=help_tables, notes=notes)


def resolved_config(view: ConfigView) -> EsperConfig:
    """The view as a configuration again (equal to what loading its TOML or JSON gives back)."""
    return CONVERTER.structure(view.data, EsperConfig)
