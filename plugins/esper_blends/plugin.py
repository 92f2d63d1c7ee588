"""Registers the built-in blend styles. ``BUILTIN_STYLES`` is the order the action space's style head
lists them: part of every checkpoint's action-space layout, so append, do not reorder."""

from esper_blends.gated import SPEC as GATED
from esper_blends.linear_add import SPEC as LINEAR_ADD
from esper_blends.linear_multiply import SPEC as LINEAR_MULTIPLY
from esper_blends.sigmoid_add import SPEC as SIGMOID_ADD
from esper_core.hookspecs import hookimpl
from esper_core.specs import BlendStyleSpec

BUILTIN_STYLES: tuple[BlendStyleSpec, ...] = (LINEAR_ADD, LINEAR_MULTIPLY, SIGMOID_ADD, GATED)


@hookimpl
def esper_blend_styles() -> list[BlendStyleSpec]:
    return list(BUILTIN_STYLES)
