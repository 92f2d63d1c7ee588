"""Registers the built-in blueprints (each module in this package defines one ``SPEC``)."""

from esper_blueprints.catalogue import BUILTIN_BLUEPRINTS
from esper_core.hookspecs import hookimpl
from esper_core.specs import BlueprintSpec


@hookimpl
def esper_blueprints() -> list[BlueprintSpec]:
    return list(BUILTIN_BLUEPRINTS)
