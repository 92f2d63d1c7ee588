"""Build an ``EsperConfig`` from defaults < preset < host's adjustments < config file < CLI overrides, strictly.

Every layer is a nested dict; they are merged first and structured once, so a configuration is either
complete and valid or not produced at all (nothing is half-applied). Every problem names its full key path
(``ppo.clip_ratoi``), the layer that set it (the file path, the preset, the host's adjustments, the command
line), and what was expected, with a "did you mean" for misspelt keys.

The host's adjustments come from its plugin (``HostSpec.preset_adjustments``), but this module imports no
plugin: the caller, which has the plugin registry, passes a ``PresetAdjustments`` lookup.
"""

from __future__ import annotations

import copy
import difflib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Sequence

import attrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from esper_core.config.sections import EsperConfig
from esper_core.validators import SettingError
from esper_core.config.converter import CONVERTER, WrongType, type_name
from esper_core.config.presets import PRESETS, UnknownPresetError, adjustment_problems, resolve_preset

KeyPath = tuple[str | int, ...]
#: ``(host name, concrete preset name) -> nested override dict`` (empty when the host adjusts nothing or
#: is unknown: an unknown host is the run setup's error to report, with its suggestions).
PresetAdjustments = Callable[[str, str], Mapping[str, Any]]
DEFAULTS_SOURCE = "defaults"
OVERRIDES_SOURCE = "command-line overrides"

#: Top-level sections that no longer exist -> where their keys live now. An old key is an error that names
#: its new home (a silent alias would let two spellings of one setting disagree).
RETIRED_SECTIONS: Mapping[str, str] = MappingProxyType({
    # 0.2: a policy's hyperparameters are the policy's own options (ppo_v2's included), not a core section.
    "ppo": "policy.options",
})


def format_key_path(path: Sequence[str | int]) -> str:
    """``("ppo", "clip_ratio")`` -> ``ppo.clip_ratio``; indices as ``[1]``; odd keys quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("_", "a").replace("-", "a").isalnum():
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or "(top level)"


@attrs.frozen
class ConfigProblem:
    """One thing wrong with a configuration."""

    key_path: str
    message: str
    source: str | None = None

    def __str__(self) -> str:
        where = [part for part in (self.source, self.key_path) if part]
        return ": ".join([*where, self.message])


class ConfigError(ValueError):
    """The configuration is invalid. ``problems`` lists each bad key with its source; nothing was applied."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = f"invalid configuration: {self.problems[0]}"
        else:
            text = f"invalid configuration ({len(self.problems)} problems):\n" + "\n".join(
                f"  - {problem}" for problem in self.problems
            )
        super().__init__(text)


# ---------------------------------------------------------------------------------- error translation
def _note_key(error: BaseException) -> str | int | None:
    for note in getattr(error, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            return note.name
        if isinstance(note, IterableValidationNote):
            return note.index
    return None


def _unknown_key_message(key: str, cls: type) -> str:
    valid = [field.name for field in attrs.fields(cls)] if attrs.has(cls) else []
    if not valid:
        return "unknown key; no options are accepted here"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    return f"unknown key; valid keys: {', '.join(valid)}"


def _attrs_validator_problem(error: BaseException, path: KeyPath) -> tuple[KeyPath, str] | None:
    """attrs' ``instance_of`` raises ``TypeError(msg, attribute, type, value)``: name the attribute."""
    args = error.args
    if isinstance(error, TypeError) and len(args) == 4 and isinstance(args[1], attrs.Attribute):
        attribute, expected, value = args[1], args[2], args[3]
        return (*path, attribute.name), f"expected {type_name(expected)}, got {type(value).__name__} {value!r:.80}"
    return None


def _problems(error: BaseException, path: KeyPath = ()) -> list[tuple[KeyPath, str]]:
    """Flatten a cattrs error tree into ``(key path, message)`` pairs."""
    if isinstance(error, (ClassValidationError, IterableValidationError)):
        found: list[tuple[KeyPath, str]] = []
        for sub in error.exceptions:
            key = _note_key(sub)
            found.extend(_problems(sub, path if key is None else (*path, key)))
        return found
    if isinstance(error, ForbiddenExtraKeysError):
        return [((*path, key), _unknown_key_message(key, error.cl)) for key in sorted(error.extra_fields)]
    if isinstance(error, WrongType):
        return [(path, str(error))]
    if isinstance(error, SettingError):
        key_path = (*path, error.field) if error.key is None else (*path, error.field, error.key)
        return [(key_path, error.reason)]
    if isinstance(error, KeyError) and _note_key(error) is not None:
        return [(path, "required key is missing")]
    attrs_problem = _attrs_validator_problem(error, path)
    if attrs_problem is not None:
        return [attrs_problem]
    return [(path, str(error) or type(error).__name__)]


def _retired_problems(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> list[ConfigProblem]:
    """One problem per key under a retired section, naming the key's new path."""
    problems = []
    for source, tree in layers:
        for section, new_home in RETIRED_SECTIONS.items():
            if section not in tree:
                continue
            table = tree[section]
            keys = sorted(table) if isinstance(table, Mapping) and table else [None]
            for key in keys:
                old = section if key is None else f"{section}.{key}"
                new = new_home if key is None else f"{new_home}.{key}"
                problems.append(ConfigProblem(old, f"moved to {new} (the [{section}] section is gone since 0.2)", source))
    return problems


def _has_path(tree: Any, path: KeyPath) -> bool:
    for part in path:
        if isinstance(part, int):
            if not isinstance(tree, (list, tuple)) or not -len(tree) <= part < len(tree):
                return False
        elif not isinstance(tree, Mapping) or part not in tree:
            return False
        tree = tree[part]
    return True


def _source_of(path: KeyPath, layers: Sequence[tuple[str, Mapping[str, Any]]]) -> str | None:
    """The highest-precedence layer that set ``path`` (or, failing that, its closest parent)."""
    for length in range(len(path), 0, -1):
        for source, tree in reversed(layers):
            if _has_path(tree, path[:length]):
                return source
    return None


def _config_error(
    error: BaseException, layers: Sequence[tuple[str, Mapping[str, Any]]], prefix: KeyPath = ()
) -> ConfigError:
    problems = []
    for path, message in _problems(error):
        source = _source_of(path, layers)
        problems.append(ConfigProblem(format_key_path((*prefix, *path)), message, source))
    return ConfigError(problems)


# ------------------------------------------------------------------------------------------- layers
#: Keys that mark a run directory's ``config.json`` (the resolved config under ``config``, beside provenance).
RUN_DESCRIPTION_KEYS = frozenset({"config", "esper_version", "action_layout"})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML (``.toml``) or JSON (``.json``) file as a nested dict; any problem is a ``ConfigError``.

    A run's own ``runs/NAME/config.json`` is accepted as it is: its ``config`` table is the configuration
    the run used (task and preset resolved), so ``--config runs/NAME/config.json`` runs it again."""
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in {".toml", ".json"}:
        raise ConfigError([ConfigProblem("", f"unsupported file type {suffix or '(none)'!r}; use .toml or .json", source)])
    try:
        raw = path.read_bytes()
    except OSError as error:
        reason = "file not found" if isinstance(error, FileNotFoundError) else f"cannot read: {error.strerror or error}"
        raise ConfigError([ConfigProblem("", reason, source)]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8")) if suffix == ".toml" else json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError([ConfigProblem("", f"not UTF-8 text: {error}", source)]) from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        kind = "TOML" if suffix == ".toml" else "JSON"
        raise ConfigError([ConfigProblem("", f"invalid {kind}: {error}", source)]) from None
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem("", f"expected a table (JSON object), got {type(data).__name__}", source)])
    if RUN_DESCRIPTION_KEYS <= set(data) and isinstance(data["config"], dict):
        return data["config"]
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` on top of ``base``, tables merged key by key, anything else replaced."""
    merged: dict[str, Any] = {key: copy.deepcopy(_thaw(value)) for key, value in base.items()}
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(_thaw(value))
    return merged


def _thaw(value: Any) -> Any:
    """Read-only mappings (presets) become plain dicts so the merged tree is ordinary data."""
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    return value


def _requested_preset(
    preset: str | None, layers: Sequence[tuple[str, Mapping[str, Any]]]
) -> tuple[str, str | None]:
    """The preset name asked for and who asked: the explicit argument, then the highest layer's run.preset."""
    if preset is not None:
        return preset, "--preset"
    for source, tree in reversed(layers):
        if _has_path(tree, ("run", "preset")):
            return tree["run"]["preset"], source
    return EsperConfig().run.preset, None


def _cuda_available(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> bool:
    """Only consulted for ``auto``; an explicit ``device.device = "cpu"`` means no CUDA for sizing."""
    for _, tree in reversed(layers):
        if _has_path(tree, ("device", "device")):
            if str(tree["device"]["device"]).startswith("cpu"):
                return False
            break
    import torch  # late: loading a config should not pay for torch unless `auto` needs the answer

    return bool(torch.cuda.is_available())


def _resolve_preset(
    preset: str | None, layers: Sequence[tuple[str, Mapping[str, Any]]], cuda_available: bool | None
) -> str:
    name, source = _requested_preset(preset, layers)
    if not isinstance(name, str):
        raise ConfigError([ConfigProblem("run.preset", str(WrongType(name, str)), source)])
    if name == "auto" and cuda_available is None:
        cuda_available = _cuda_available(layers)
    try:
        return resolve_preset(name, bool(cuda_available))
    except UnknownPresetError as error:
        raise ConfigError([ConfigProblem("run.preset", str(error), source)]) from None


def _requested_host(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> Any:
    """The host the highest layer chooses (presets never choose one), else the default host."""
    for _, tree in reversed(layers):
        if _has_path(tree, ("host", "name")):
            return tree["host"]["name"]
    return EsperConfig().host.name


def adjustments_source(host: str, preset: str) -> str:
    """How errors and ``esper config show`` name the layer of a host's adjustments to a preset."""
    return f"host {host!r} adjustments to preset {preset!r}"


def _adjustment_layer(
    lookup: PresetAdjustments | None, layers: Sequence[tuple[str, Mapping[str, Any]]], preset: str
) -> tuple[str, Mapping[str, Any]] | None:
    """The chosen host's adjustments to ``preset`` as a layer (None: it has none)."""
    host = _requested_host(layers)
    if lookup is None or not isinstance(host, str):
        return None  # a host name of the wrong type is reported when the merged config is structured
    adjustments = lookup(host, preset)
    if not adjustments:
        return None
    source = adjustments_source(host, preset)
    problems = adjustment_problems(f"host {host!r}", {preset: adjustments})
    if problems:
        raise ConfigError([ConfigProblem("", problem, source) for problem in problems])
    return source, plain_json(adjustments)  # as a config file says it (lists, not a frozen spec's tuples)


# ---------------------------------------------------------------------------------------- public API
def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    preset: str | None = None,
    *,
    cuda_available: bool | None = None,
    overrides_source: str = OVERRIDES_SOURCE,
    preset_adjustments: PresetAdjustments | None = None,
) -> EsperConfig:
    """The resolved configuration: defaults < preset < the chosen host's adjustments to that preset (from
    ``preset_adjustments``; none when None) < file (TOML/JSON by suffix) < overrides (nested dict).

    ``preset`` (e.g. from ``--preset``) wins over ``run.preset`` in the file or overrides; ``auto`` resolves
    with ``cuda_available`` (detected when None) and the resolved name is recorded in ``run.preset``.
    Raises ``ConfigError`` naming every bad key path and its source; inputs are never modified.
    A complete configuration (a run's ``config.json``) sets every key itself, so it loads back unchanged
    whatever the presets and adjustments are now.
    """
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if path is not None:
        layers.append((str(path), read_config_file(path)))
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise ConfigError([ConfigProblem("", "overrides must be a nested dict", overrides_source)])
        layers.append((overrides_source, overrides))
    retired = _retired_problems(layers)
    if retired:
        raise ConfigError(retired)
    resolved = _resolve_preset(preset, layers, cuda_available)
    preset_layer = (f"preset {resolved!r}", PRESETS[resolved])
    adjustment_layer = _adjustment_layer(preset_adjustments, layers, resolved)
    all_layers = [
        (DEFAULTS_SOURCE, config_to_dict(EsperConfig())), preset_layer,
        *([adjustment_layer] if adjustment_layer else []), *layers,
    ]
    merged: dict[str, Any] = {}
    for _, tree in all_layers:
        merged = deep_merge(merged, tree)
    if isinstance(merged.get("run"), dict):
        merged["run"]["preset"] = resolved
    try:
        return CONVERTER.structure(merged, EsperConfig)
    except Exception as error:
        raise _config_error(error, all_layers) from None


def config_to_dict(cfg: EsperConfig) -> dict[str, Any]:
    """A JSON-able nested dict (tuples as lists) that ``load_config`` turns back into ``cfg``."""
    return plain_json(CONVERTER.unstructure(cfg))


def plain_json(value: Any) -> Any:
    """An unstructured attrs tree as plain JSON types: mappings with string keys, sequences and sets as lists."""
    if isinstance(value, Mapping):
        return {str(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_json(item) for item in value]
    return value


def structure_options(spec: Any, options: Mapping[str, Any] | None, key_path: str, *, source: str | None = None) -> Any:
    """A plugin's ``options`` table -> an instance of ``spec.options_type``, as strictly as the config.

    Errors name the full path below ``key_path`` (e.g. ``policy.options.threshold``) and ``source``.
    """
    prefix: KeyPath = tuple(key_path.split(".")) if key_path else ()
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigError([ConfigProblem(key_path, str(WrongType(options, dict)), source)])
    layers = [(source, options)] if source else []
    try:
        return CONVERTER.structure(_thaw(options), spec.options_type)
    except Exception as error:
        problems = _config_error(error, layers, prefix).problems
        name = getattr(spec, "name", None)
        kind = getattr(spec, "kind", None)
        owner = f" (options of {kind} {name!r})" if name and kind else ""
        raise ConfigError(
            [ConfigProblem(problem.key_path, problem.message + owner, source) for problem in problems]
        ) from None
