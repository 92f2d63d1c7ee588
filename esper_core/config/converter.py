"""The one strict cattrs converter for configuration and plugin options.

cattrs by default coerces (``int("3")``, ``str(5)``, a string into a tuple of characters); a config typo
must fail instead, so every primitive, sequence, mapping and union hook here checks the type first and
says what was expected. Unknown keys are rejected (``forbid_extra_keys``) and every error is collected
(``detailed_validation``) so ``esper_core.config.loading`` can name each bad key path at once.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Mapping
from typing import Any, Callable

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn

_NONE = type(None)


class WrongType(TypeError):
    """A value of the wrong type; ``expected`` is the annotation it had to fit."""

    def __init__(self, value: Any, expected: Any) -> None:
        self.value = value
        self.expected = expected
        super().__init__(f"expected {type_name(expected)}, got {type(value).__name__} {value!r:.80}")


class WrongLength(WrongType):
    """A fixed-length tuple given the wrong number of items (a list from TOML/JSON is the right kind)."""

    def __init__(self, value: Any, expected: Any, length: int) -> None:
        super().__init__(value, expected)
        self.args = (f"expected {length} items ({type_name(expected)}), got {len(value)}: {value!r:.80}",)


def type_name(annotation: Any) -> str:
    """``int | None``, ``tuple[str, ...]``, ``table`` (for attrs classes): how errors spell a type."""
    if attrs.has(annotation) or annotation in (dict, Mapping):
        return "a table (mapping)"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    if annotation is _NONE:
        return "None"
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _origin(annotation: Any) -> Any:
    return typing.get_origin(annotation)


# -------------------------------------------------------------------------------------------- hooks
def _strict_int(value: Any, annotation: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongType(value, annotation)
    return value


def _strict_float(value: Any, annotation: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WrongType(value, annotation)
    return float(value)


def _strict_str(value: Any, annotation: Any) -> str:
    if not isinstance(value, str):
        raise WrongType(value, annotation)
    return value


def _strict_bool(value: Any, annotation: Any) -> bool:
    if not isinstance(value, bool):
        raise WrongType(value, annotation)
    return value


def _collect(items: Any, structure_one: Callable[[Any, Any], Any], annotation: Any) -> list[Any]:
    """Structure every item, gathering all failures the way cattrs does (notes carry the index/key)."""
    results, errors = [], []
    for index, item in items:
        try:
            results.append(structure_one(index, item))
        except Exception as error:
            error.add_note(IterableValidationNote(f"Structuring {annotation} @ index {index!r}", index, annotation))
            errors.append(error)
    if errors:
        raise IterableValidationError(f"While structuring {type_name(annotation)}", errors, annotation)
    return results


def _sequence_hook(converter: cattrs.Converter, annotation: Any) -> Callable[[Any, Any], Any]:
    origin = _origin(annotation) or annotation
    args = typing.get_args(annotation)
    homogeneous = not (origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis))
    element = args[0] if args else Any
    build = tuple if origin in (tuple, collections.abc.Sequence) else frozenset if origin is collections.abc.Set else origin

    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple, set, frozenset)):
            raise WrongType(value, annotation)
        if not homogeneous and len(value) != len(args):
            raise WrongLength(value, annotation, len(args))
        types_at = (lambda i: element) if homogeneous else (lambda i: args[i])
        items = _collect(enumerate(value), lambda i, item: converter.structure(item, types_at(i)), annotation)
        return build(items)

    return structure


def _mapping_hook(converter: cattrs.Converter, annotation: Any) -> Callable[[Any, Any], Any]:
    args = typing.get_args(annotation)
    key_type, value_type = args if len(args) == 2 else (Any, Any)

    def structure(value: Any, _: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise WrongType(value, annotation)
        pairs = _collect(
            ((key, (key, item)) for key, item in value.items()),
            lambda key, pair: (converter.structure(pair[0], key_type), converter.structure(pair[1], value_type)),
            annotation,
        )
        return dict(pairs)

    return structure


def _union_hook(converter: cattrs.Converter, annotation: Any) -> Callable[[Any, Any], Any]:
    members = [member for member in typing.get_args(annotation) if member is not _NONE]
    optional = len(members) < len(typing.get_args(annotation))

    def structure(value: Any, _: Any) -> Any:
        if value is None:
            if optional:
                return None
            raise WrongType(value, annotation)
        first_error: Exception | None = None
        for member in members:  # first member that accepts the value wins (int before float, etc.)
            try:
                return converter.structure(value, member)
            except WrongType:
                continue
            except Exception as error:  # right type, bad content: remember the most informative error
                first_error = first_error or error
        if first_error is not None:
            raise first_error
        raise WrongType(value, annotation)

    return structure


def _attrs_hook(converter: cattrs.Converter, cls: type) -> Callable[[Any, Any], Any]:
    inner = make_dict_structure_fn(cls, converter)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, Mapping):
            raise WrongType(value, cls)
        return inner(dict(value), cls)

    return structure


def _is_sequence(annotation: Any) -> bool:
    origin = _origin(annotation) or annotation
    return origin in (tuple, list, set, frozenset, collections.abc.Sequence, collections.abc.Set)


def _is_mapping(annotation: Any) -> bool:
    origin = _origin(annotation) or annotation
    return origin in (dict, collections.abc.Mapping)


def make_converter() -> cattrs.Converter:
    """A fresh strict converter (unknown keys rejected, every error collected, no silent coercion)."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook_factory(_is_sequence, lambda t: _sequence_hook(converter, t))
    converter.register_structure_hook_factory(_is_mapping, lambda t: _mapping_hook(converter, t))
    converter.register_structure_hook_factory(_is_union, lambda t: _union_hook(converter, t))
    converter.register_structure_hook_factory(attrs.has, lambda cls: _attrs_hook(converter, cls))
    return converter


#: Built once; hooks are only registered in ``make_converter``, so it is never changed afterwards.
CONVERTER: cattrs.Converter = make_converter()
