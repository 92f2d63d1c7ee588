"""The built-in blend styles, in the order the action space's style head lists them."""

from esper_blends.gated import SPEC as GATED
from esper_blends.linear_add import SPEC as LINEAR_ADD
from esper_blends.linear_multiply import SPEC as LINEAR_MULTIPLY
from esper_blends.sigmoid_add import SPEC as SIGMOID_ADD
from esper_core.specs import BlendStyleSpec

BUILTIN_STYLES: tuple[BlendStyleSpec, ...] = (LINEAR_ADD, LINEAR_MULTIPLY, SIGMOID_ADD, GATED)
