"""Registers the built-in blueprints (each module in this package defines one ``SPEC``).

``BUILTIN_BLUEPRINTS`` is the order the action space's blueprint head lists them (after ``noop``). The
order is part of every checkpoint's action-space layout: append new blueprints, do not reorder.
"""

from esper_blueprints.attention import SPEC as ATTENTION
from esper_blueprints.bottleneck import SPEC as BOTTLENECK
from esper_blueprints.causal_attention import SPEC as CAUSAL_ATTENTION
from esper_blueprints.conv_heavy import SPEC as CONV_HEAVY
from esper_blueprints.conv_light import SPEC as CONV_LIGHT
from esper_blueprints.conv_small import SPEC as CONV_SMALL
from esper_blueprints.depthwise import SPEC as DEPTHWISE
from esper_blueprints.layer_norm import SPEC as LAYER_NORM
from esper_blueprints.lora import LARGE_SPEC as LORA_LARGE
from esper_blueprints.lora import SPEC as LORA
from esper_blueprints.mlp import SMALL_SPEC as MLP_SMALL
from esper_blueprints.mlp import SPEC as MLP
from esper_blueprints.norm import SPEC as NORM
from esper_core.hookspecs import hookimpl
from esper_core.specs import BlueprintSpec

BUILTIN_BLUEPRINTS: tuple[BlueprintSpec, ...] = (
    CONV_LIGHT,
    CONV_SMALL,
    CONV_HEAVY,
    BOTTLENECK,
    DEPTHWISE,
    NORM,
    ATTENTION,
    # transformer topology (the gpt host)
    LORA,
    LORA_LARGE,
    MLP_SMALL,
    MLP,
    CAUSAL_ATTENTION,
    LAYER_NORM,
)


@hookimpl
def esper_blueprints() -> list[BlueprintSpec]:
    return list(BUILTIN_BLUEPRINTS)
