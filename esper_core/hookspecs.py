"""Hook specifications of the ``esper`` pluggy project (filled in by the plugin-system work)."""

import pluggy

PROJECT = "esper"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
