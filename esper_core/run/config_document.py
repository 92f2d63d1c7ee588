"""A resolved configuration as a document a person reads: every chosen plugin's options written out in full
with their defaults, every setting's one-line help beside it. `esper config show` prints it; a run saves
it as ``runs/NAME/config.toml`` (``--config`` takes that file back).

Why in full: a config that leaves ``[policy.options]`` empty still runs with some 40 ppo_v2 settings, and
the docs send readers to these documents to find them.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any, Iterable, Iterator, Mapping

import attrs

from esper_core.config.converter import CONVERTER
from esper_core.config.loading import adjustments_source, config_to_dict, load_config, plain_json, structure_options
from esper_core.config.sections import EsperConfig
from esper_core.config.toml import to_toml
from esper_core.plugins.registry import preset_adjustments_of
from esper_core.run.observers import observer_options
from esper_core.run.setup import task_options
from esper_core.validators import setting_help

#: Sections whose ``options`` table belongs to the chosen plugin of that kind.
PLUGIN_SECTIONS: tuple[str, ...] = ("task", "host", "policy", "reward")


@attrs.frozen
class ConfigView:
    """``data``: the config as plain data, plugin options in full; ``help``: table path (``run``,
    ``policy.options``, ``observers.options.tensorboard``) -> field -> help; ``notes``: what was resolved or
    skipped (``task auto -> synthetic``), printed as comments above the TOML."""

    data: dict[str, Any]
    help: dict[str, dict[str, str]]
    notes: tuple[str, ...] = ()


def plain_options(options: Any) -> dict[str, Any]:
    """An options object as the plain table that structures back into an equal object."""
    return config_to_dict(options) if attrs.has(type(options)) else {}


def adjustments_note(cfg: EsperConfig, registry: Any) -> str | None:
    """What the chosen host changes in the chosen preset (None: nothing), so a reader of the resolved
    config can tell a host's value from the preset's. A --config file or flag still wins over it."""
    adjustments = preset_adjustments_of(registry)(cfg.host.name, cfg.run.preset)
    if not adjustments:
        return None
    values = ", ".join(f"{key}={json.dumps(value)}" for key, value in _leaves(plain_json(adjustments)))
    return f"{adjustments_source(cfg.host.name, cfg.run.preset)} (a config file or flag wins over them): {values}"


def describe_config(cfg: EsperConfig, registry: Any, notes: Iterable[str] = ()) -> ConfigView:
    """The view of ``cfg``, whose ``task.name`` is already resolved (not ``auto``). Raises what structuring
    the options raises; callers that promise a run's checks run ``check_setup`` first. The notes end with
    the host's adjustments to the preset, if it makes any."""
    data = config_to_dict(cfg)
    help_tables = {section: setting_help(type(getattr(cfg, section))) for section in data}
    for kind in PLUGIN_SECTIONS:
        section = getattr(cfg, kind)
        spec = registry.get(kind, section.name)
        options = task_options(spec, section) if kind == "task" else structure_options(spec, dict(section.options), f"{kind}.options")
        data[kind]["options"] = plain_options(options)
        help_tables[f"{kind}.options"] = setting_help(spec.options_type)
    for name, options in observer_options(registry, cfg.observers).items():
        data["observers"]["options"][name] = plain_options(options)
        help_tables[f"observers.options.{name}"] = setting_help(registry.get("observer", name).options_type)
    adjusted = adjustments_note(cfg, registry)
    return ConfigView(data=data, help=help_tables, notes=(*notes, *([adjusted] if adjusted else [])))


def resolved_config(view: ConfigView) -> EsperConfig:
    """The view as a configuration again (equal to what loading its TOML or JSON gives back)."""
    return CONVERTER.structure(view.data, EsperConfig)


def _leaves(tree: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if isinstance(tree, Mapping) and tree:
        for key, value in tree.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield ".".join(path), tree


def lost_in_toml(view: ConfigView, text: str, registry: Any) -> list[str]:
    """Keys whose value loading ``text`` back does not give (a null TOML cannot write, where the default is
    not null): the one way a TOML copy can differ from the configuration it shows."""
    loaded = load_config(
        overrides=tomllib.loads(text), preset=view.data["run"]["preset"], preset_adjustments=preset_adjustments_of(registry)
    )
    again = describe_config(loaded, registry)
    before, after = dict(_leaves(view.data)), dict(_leaves(again.data))
    return [key for key, value in before.items() if after.get(key, value) != value or key not in after]


def config_toml(view: ConfigView, title: str, registry: Any) -> str:
    """The TOML document: ``title`` and the notes as comments, then every table with its help. A key that
    would not load back as it is named up front, pointing to the JSON copy, so the file never misleads."""
    body = to_toml(view.data, view.help)
    header = [title, *view.notes]
    lost = lost_in_toml(view, body, registry)
    if lost:
        header.append(
            f"warning: TOML has no null, so loading this file gives defaults for {', '.join(lost)}; "
            "the JSON form (--json, or the run's config.json) keeps them"
        )
    return "".join(f"# {line}\n" for line in header) + body
