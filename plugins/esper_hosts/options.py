"""Validation shared by the host option classes: clear errors naming the host, the option and the value."""

from __future__ import annotations

from typing import Any, Callable

import attrs


def as_tuple(value: Any) -> Any:
    """Lists (as TOML/JSON give them) become tuples; anything else is left for the validator to reject."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def positive_ints(host: str, length: int) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: exactly ``length`` ints, each >= 1."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        ok = (
            isinstance(value, tuple)
            and len(value) == length
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        )
        if not ok:
            raise ValueError(
                f"{host} host option {attribute.name!r} must be {length} integers >= 1 "
                f"(one per stage), e.g. {list(attribute.default)}; got {value!r}"
            )

    return check
