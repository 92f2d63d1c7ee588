"""The one error boundary of the ``esper`` command: every failure becomes one paragraph, no traceback.

Why one place: commands catch the errors they expect (a bad config, a missing run directory), but a run
can also fail on things no command anticipates: the disk fills up, memory runs out, a plugin raises (or
calls ``sys.exit``) inside a hook. Those used to end in a traceback that named neither the culprit nor the
fix. ``EsperGroup.invoke`` wraps every command; ``describe_failure`` turns an exception into a message
naming the file, key or plugin (and its distribution) and what to do, with exit code 2 for a bad
configuration (or settings a plugin refuses: ``IncompatibleSettings``) and 1 for anything else.
``esper --debug ...`` re-raises instead, traceback and all.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from types import TracebackType
from typing import Any, Iterator

import attrs
import click

from esper_core.config.loading import ConfigError
from esper_core.data import DatasetFormatError, DatasetNotFoundError
from esper_core.plugins.loader import BUILTIN_DISTRIBUTION, FORMER_BUILTIN_DISTRIBUTIONS
from esper_core.run.checkpoint import CheckpointError
from esper_core.run.faults import HostFaultError
from esper_core.run.rundir import RunDirError, describe_os_error
from esper_core.run.setup import SetupError
from esper_core.validators import IncompatibleSettings, SettingError

#: Errors whose message was written for the user (path, key, fix): shown as they are.
EXPLAINED_ERRORS: tuple[type[BaseException], ...] = (
    SetupError, RunDirError, CheckpointError, DatasetFormatError, DatasetNotFoundError, HostFaultError,
)
#: Distributions whose plugins are Esper's own (a failure there is Esper's bug to report).
BUILTIN_DISTRIBUTIONS = frozenset({BUILTIN_DISTRIBUTION, *FORMER_BUILTIN_DISTRIBUTIONS})
#: Exit code of a configuration or usage error (click's convention).
EXIT_USAGE = 2
#: torch's CPU allocator reports running out of memory as a RuntimeError with this text.
_CPU_OOM = re.compile(r"can't allocate memory|not enough memory|DefaultCPUAllocator", re.IGNORECASE)


class ConfigUsageError(click.ClickException):
    """A bad configuration on the command line or in a file: exit code 2, like other usage errors."""

    exit_code = EXIT_USAGE


@attrs.frozen
class Culprit:
    """The plugin whose code raised: how errors name it, and where in its code."""

    plugin: str
    distribution: str | None
    version: str | None
    where: str  # file:line of the innermost frame in the plugin's code

    def describe(self) -> str:
        if self.distribution is None:
            return f"plugin {self.plugin!r}"
        return f"plugin {self.plugin!r} (distribution {self.distribution} {self.version or '?'})"

    def fix(self) -> str:
        skip = f"skip it with ESPER_DISABLE_PLUGINS={self.plugin}"
        if self.distribution is None:
            return f"fix the plugin, or {skip}"
        if self.distribution in BUILTIN_DISTRIBUTIONS:
            return f"it ships with esper, so please report it with the `esper --debug ...` traceback, or {skip}"
        return f"upgrade or uninstall it (pip uninstall {self.distribution}), or {skip}"


def _chain(error: BaseException, *, as_shown: bool = False) -> Iterator[BaseException]:
    """The error, then its causes and contexts, each once. ``as_shown``: only the chain a traceback would
    print (a context hidden by ``raise ... from None`` ends it)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        hidden = as_shown and current.__suppress_context__
        current = current.__cause__ or (None if hidden else current.__context__)


def _tracebacks(error: BaseException) -> Iterator[TracebackType]:
    """The error's traceback, then those of its causes and contexts (a wrapped plugin error counts)."""
    return (link.__traceback__ for link in _chain(error) if link.__traceback__ is not None)


def _refused_settings(error: BaseException) -> IncompatibleSettings | None:
    """The ``IncompatibleSettings`` behind the error, if any: the error itself, or one in the chain a
    traceback would show (its cause, else its context unless ``raise ... from None`` hid it)."""
    return next((link for link in _chain(error, as_shown=True) if isinstance(link, IncompatibleSettings)), None)


def _plugin_packages(registry: Any) -> dict[str, Any]:
    """Top-level package -> PluginInfo for every loaded plugin that came from an entry point."""
    packages: dict[str, Any] = {}
    for info in getattr(registry, "plugins", ()) or ():
        source = getattr(info, "source", None) or ""
        if getattr(info, "distribution", None) is None or not re.match(r"^[A-Za-z_][\w.]*(:[\w.]+)?$", source):
            continue
        packages.setdefault(source.split(":")[0].split(".")[0], info)
    return packages


def find_culprit(error: BaseException, registry: Any) -> Culprit | None:
    """The loaded plugin whose code is innermost in the error's traceback (or its causes'), if any."""
    packages = _plugin_packages(registry)
    if not packages:
        return None
    for tb in _tracebacks(error):
        frames = list(traceback.walk_tb(tb))
        for frame, line in reversed(frames):
            module = str(frame.f_globals.get("__name__", ""))
            info = packages.get(module.split(".")[0])
            if info is not None:
                where = f"{frame.f_code.co_filename}:{line}"
                return Culprit(info.name, info.distribution, info.version, where)
    return None


def _memory_note() -> str:
    try:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return ""
    return f" (this machine has about {pages * size / 2**30:.1f} GiB of memory free)"


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    oom_type = getattr(sys.modules.get("torch"), "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and bool(_CPU_OOM.search(str(error)))


def describe_failure(error: BaseException, *, registry: Any = None, run_root: Any = None) -> tuple[str, int]:
    """``(message, exit code)`` for a failure that reached the boundary."""
    resume = f" A run stopped by this continues from its last checkpoint: esper resume {run_root}" if run_root else ""
    if isinstance(error, (ConfigError, SettingError)):  # a setting out of its range, wherever it was checked
        return str(error), EXIT_USAGE
    refused = _refused_settings(error) if isinstance(error, Exception) else None  # sys.exit stays a plugin bug
    if refused is not None:  # a plugin said no to the user's settings: not its bug, nothing to report or disable
        refuser = find_culprit(refused, registry)
        text = str(refused) or "these settings do not fit together"
        return (f"{refuser.describe()} refused these settings: {text}" if refuser else text), EXIT_USAGE
    culprit = find_culprit(error, registry)
    if isinstance(error, SystemExit):
        where = culprit.describe() if culprit else "a plugin"
        at = f" at {culprit.where}" if culprit else ""
        fix = culprit.fix() if culprit else "find it with --debug"
        return f"{where} called sys.exit({error.code!r}){at}, which would have ended esper; {fix}.", 1
    if _is_out_of_memory(error):
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (
            f"out of memory: {text}{_memory_note()}. Something asked for more than fits: lower the sizes "
            "(run.envs, training.batch_size, policy.options.lstm_dim / feature_dim, the task's size) or use "
            f"a machine with more memory.{resume}",
            1,
        )
    if isinstance(error, OSError) and error.errno is not None and not isinstance(error, EXPLAINED_ERRORS):
        what = "writing" if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "a file operation"
        return describe_os_error(error, what) + "." + resume, 1
    if isinstance(error, EXPLAINED_ERRORS):
        return str(error), 1
    kind = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if culprit is not None:
        return (
            f"{culprit.describe()} failed: {kind} (at {culprit.where}). This is a problem in that plugin, "
            f"not in your run's settings: {culprit.fix()}. --debug shows the traceback.{resume}",
            1,
        )
    if isinstance(error, (ValueError, LookupError)):  # esper's own checks word these for the user
        return str(error), 1
    return (
        f"internal error: {kind}. This is a bug in esper, not in your input: rerun with `esper --debug ...` "
        f"for the traceback and report it.{resume}",
        1,
    )


def as_click_error(error: BaseException, *, registry: Any = None, run_root: Any = None) -> click.ClickException:
    """The failure as the click exception that prints it (exit 2 for configuration, else 1)."""
    message, code = describe_failure(error, registry=registry, run_root=run_root)
    failure = ConfigUsageError(message) if code == EXIT_USAGE else click.ClickException(message)
    return failure


class EsperGroup(click.Group):
    """A click group whose commands fail with one message, never a traceback (unless ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except SystemExit as error:
            state = ctx.obj
            if getattr(state, "debug", False) or find_culprit(error, getattr(state, "registry", None)) is None:
                raise  # esper's own exit codes (130 after Ctrl-C) pass through
            raise _converted(error, state) from None
        except Exception as error:
            if getattr(ctx.obj, "debug", False):
                raise
            raise _converted(error, ctx.obj) from None


def _converted(error: BaseException, state: Any) -> click.ClickException:
    return as_click_error(error, registry=getattr(state, "registry", None), run_root=getattr(state, "run_root", None))
