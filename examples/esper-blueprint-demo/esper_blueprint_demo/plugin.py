"""The module named by this distribution's ``esper`` entry point: Esper calls its hooks."""

from esper_blueprint_demo.conv_dilated import CONV_DILATED
from esper_core.api import BlueprintSpec, hookimpl

#: The plugin API this module was written against; Esper refuses (and reports) a mismatch.
ESPER_PLUGIN_API = 1


@hookimpl
def esper_blueprints() -> list[BlueprintSpec]:
    return [CONV_DILATED]
