"""``python -m esper_core.cli``: the same command as ``esper``."""

from esper_core.cli import main

main()
