"""Validation shared by the host option classes: clear errors naming the host, the option and the value."""

from __future__ import annotations

from typing import Any, Callable

import attrs


def as_tuple(value: Any) -> Any:
    """Lists (as TOML/JSON give them) become tuples; anything else is left for the validator to reject."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


#: No stage of a CIFAR-sized host needs more: a 3x3 conv of 4096 -> 4096 channels is 151M parameters, and
#: a width of 10^6 asked for by a typo would try to allocate terabytes before any message could say why.
MAX_WIDTH = 4096
#: Blocks per stage: 64 already makes a ResNet far deeper than these slots and budgets were sized for.
MAX_BLOCKS = 64


def positive_ints(host: str, length: int, most: int = MAX_WIDTH) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: exactly ``length`` ints, each in [1, ``most``]."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        ok = (
            isinstance(value, tuple)
            and len(value) == length
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= most for v in value)
        )
        if not ok:
            raise ValueError(
                f"{host} host option {attribute.name!r} must be {length} integers from 1 to {most} "
                f"(one per stage), e.g. {list(attribute.default)}; got {value!r}"
            )

    return check
