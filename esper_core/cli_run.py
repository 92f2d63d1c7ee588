"""`esper run`, `esper resume`, `esper report`, `esper eval` (filled in by the run-loop work)."""

import click


def register(main: click.Group) -> None:
    """Attach the run-loop commands to the top-level group."""
