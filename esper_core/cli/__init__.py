"""The ``esper`` command line. Plugins are loaded only inside commands that need them, so no plugin,
however broken, can stop ``esper --help``, ``esper --version`` or ``esper plugins``."""

from __future__ import annotations

import os

# libgomp's threads busy-wait between parallel regions by default; on a small or shared CPU every op then
# stalls whenever another process runs (3-7x slower, measured on 2 shared cores), while passive waiting
# costs nothing measurable on an idle machine. Only effective before torch loads, so it is set here, in the
# entry module, ahead of every import that could load torch; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402

from esper_core import PLUGIN_API_VERSION, __version__  # noqa: E402
from esper_core.cli.config import config_group  # noqa: E402
from esper_core.cli.errors import EsperGroup  # noqa: E402
from esper_core.cli.eval import eval_command  # noqa: E402
from esper_core.cli.export import export_command  # noqa: E402
from esper_core.cli.options import CliState  # noqa: E402
from esper_core.cli.plugins import plugins_command  # noqa: E402
from esper_core.cli.report import report_command  # noqa: E402
from esper_core.cli.run import resume_command, run_command  # noqa: E402


def _build_main() -> click.Group:
    @click.group(cls=EsperGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(
        __version__, "--version", prog_name="esper", message=f"%(prog)s %(version)s (plugin API {PLUGIN_API_VERSION})"
    )
    @click.option(
        "--strict-plugins",
        is_flag=True,
        help="Treat a plugin that fails to load as a fatal error (default: report it and go on), and probe every "
        "enabled blueprint and blend style before a run (default: disable one that breaks when first used).",
    )
    @click.option(
        "--debug",
        is_flag=True,
        help="Show the full traceback of a failure instead of a one-paragraph message.",
    )
    @click.pass_context
    def main(ctx: click.Context, strict_plugins: bool, debug: bool) -> None:
        """Esper grows neural networks while they train: a learned controller germinates, blends,
        fossilizes or prunes seed modules in a host network.

        Start with `esper plugins` (what is installed), `esper config show` (what a run would use)
        and `esper run`.
        """
        ctx.obj = CliState(strict_plugins=strict_plugins, debug=debug)

    for command in (plugins_command, config_group, run_command, resume_command, eval_command, export_command,
                    report_command):
        main.add_command(command)
    return main


main = _build_main()
