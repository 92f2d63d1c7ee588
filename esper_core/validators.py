"""attrs validators for settings, shared by the core's config sections and plugins' options classes.

Why not bare ``attrs.validators``: theirs raise messages the config loader cannot attribute to a key
(``'minibatches' must be >= 1: 0``). These raise ``SettingError``, which carries the field (and, for
per-head tables, the entry), so every error names its full key path and source file, e.g.
``run.toml: policy.options.clip_ratio: must be a number > 0.0 (got -1)``.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Callable, Iterable

import attrs

from esper_core.ops import HEADS

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


class SettingError(ValueError):
    """A setting outside its allowed values. Carries the field so a loader can name the full key path."""

    def __init__(self, section: str, field: str, reason: str, value: Any, key: str | None = None) -> None:
        self.section = section
        self.field = field
        self.key = key  # the offending entry of a table-valued field, if that is what is wrong
        self.reason = f"{reason} (got {value!r})"
        super().__init__(f"{section}.{field}{'.' + key if key is not None else ''}: {self.reason}")


class IncompatibleSettings(ValueError):
    """The user's settings, each valid alone, that a plugin cannot work with together (or with the task,
    host or action space they chose), e.g. host ``gpt`` with an image task, or a policy option naming a
    tempo that ``actions.tempos`` lacks.

    Why a type of its own: the CLI's error boundary blames a plugin for any other exception raised in its
    code ("a problem in that plugin ... report it, or skip it with ESPER_DISABLE_PLUGINS"). A plugin that
    correctly refuses a combination of settings is not broken, and the user must not be told to report a
    bug or disable it: this error is shown as a settings error (exit code 2, like a bad config), prefixed
    with the plugin that refused. Raise it only for what the user can change; say which setting or key
    is at fault and what would fit (``choose a sequence task (e.g. --task pysource)``). A value that is
    wrong on its own belongs in the options class's validators (``SettingError``), where the loader names
    its key path and source file.
    """


def _section(instance: Any) -> str:
    """A config section's name, or for a plugin's options class its class name (the loader adds the path)."""
    return str(getattr(type(instance), "section", type(instance).__name__))


def frozen_dict(value: Any) -> dict[str, Any]:
    """Converter for table-valued fields: a plain dict copy (never the caller's object)."""
    return dict(value)


def check(test: Callable[[Any], bool], reason: str, optional: bool = False) -> Validator:
    """An attrs validator that raises ``SettingError`` naming ``<section>.<field>`` when ``test`` fails."""

    def validate(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if optional and value is None:
            return
        try:
            ok = test(value)
        except TypeError:  # a wrongly typed value given in Python code; the loader checks types first
            ok = False
        if not ok:
            raise SettingError(_section(instance), attribute.name, reason, value)

    return validate


def is_number(value: Any) -> bool:
    """A finite int or float (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def int_at_least(minimum: int, optional: bool = False) -> Validator:
    return check(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
        f"must be an integer >= {minimum}" + (" or unset (None)" if optional else ""),
        optional,
    )


def int_within(low: int, high: int, optional: bool = False) -> Validator:
    """An integer in ``[low, high]``. Why an upper bound: a size far past anything sensible (an LSTM width
    of 10**6, 10**5 threads) is a typo that would otherwise surface as an allocation failure or a crash
    deep inside torch, long after the config was read."""
    return check(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
        f"must be an integer in [{low}, {high}]" + (" or unset (None)" if optional else ""),
        optional,
    )


def at_least(minimum: float, optional: bool = False) -> Validator:
    return check(lambda v: is_number(v) and v >= minimum, f"must be a number >= {minimum}", optional)


def above(minimum: float, optional: bool = False) -> Validator:
    return check(lambda v: is_number(v) and v > minimum, f"must be a number > {minimum}", optional)


def within(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Validator:
    left, right = "(" if low_open else "[", ")" if high_open else "]"

    def test(v: Any) -> bool:
        return (
            is_number(v)
            and (v > low if low_open else v >= low)
            and (v < high if high_open else v <= high)
        )

    return check(test, f"must be in {left}{low}, {high}{right}")


def one_of(choices: Iterable[str]) -> Validator:
    allowed = tuple(choices)
    return check(lambda v: v in allowed, f"must be one of {', '.join(allowed)}")


def unique_nonempty(items: Any) -> bool:
    return len(items) > 0 and len(set(items)) == len(items)


def head_table(value_test: Callable[[Any], bool], reason: str) -> Validator:
    """A per-head table: keys must be action heads (a misspelt head would silently do nothing)."""

    def validate(instance: Any, attribute: "attrs.Attribute[Any]", table: Any) -> None:
        section = _section(instance)
        for key, value in table.items():
            if key not in HEADS:
                close = difflib.get_close_matches(str(key), HEADS, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise SettingError(section, attribute.name, f"not an action head; {hint}heads: {', '.join(HEADS)}", key, key)
            if not value_test(value):
                raise SettingError(section, attribute.name, f"must be {reason}", value, key)

    return validate


positive = int_at_least(1)
non_negative_int = int_at_least(0)


# ------------------------------------------------------------------------------------------------ help
#: Metadata key of a setting's one-line help: ``attrs.field(default=3, metadata={HELP: "why and unit"})``.
#: ``esper config show`` prints it as a TOML comment above the value, for core sections and plugin options alike.
HELP = "help"


def setting_help(cls: type) -> dict[str, str]:
    """``field name -> help`` of an attrs config section or options class (empty text where none was given)."""
    if not attrs.has(cls):
        return {}
    return {field.name: str(field.metadata.get(HELP, "")) for field in attrs.fields(cls)}
