"""Registers the built-in blend styles."""

from esper_blends.styles import BUILTIN_STYLES
from esper_core.hookspecs import hookimpl
from esper_core.specs import BlendStyleSpec


@hookimpl
def esper_blend_styles() -> list[BlendStyleSpec]:
    return list(BUILTIN_STYLES)
