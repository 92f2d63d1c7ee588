"""How commands take hold of a run directory: exclusively, with what a killed run left behind cleaned up,
its newest intact checkpoint, and a saved config whose data paths are checked before anything is read.

Why the data-path check: a run directory may come from someone else, and its checkpoint's saved config
decides which task reads which files. A ``task.data_dir`` (or a task option naming a file) that points
inside the run directory means the directory brought its own dataset; that is refused, with
``--data-dir`` to read the data from a directory the user chose instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from esper_core.cli.options import cli_state
from esper_core.run.checkpoint import CheckpointError, checkpoint_path, load_checkpoint, load_newest_intact
from esper_core.run.lock import RunDirInUseError, RunDirLock
from esper_core.run.rundir import RunDir, RunDirError


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def hold_run_dir(run: RunDir, command: str, notice: Callable[[str], None] = warn) -> RunDirLock:
    """Lock ``run`` for this command (released when the command ends), check that results can be written,
    and delete temporaries of a process that was killed mid-write."""
    lock = RunDirLock(run.root, command).acquire()
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.find_root().call_on_close(lock.release)
        cli_state(ctx).run_root = run.root
    try:
        run.check_writable()
        removed = run.remove_stale_temporaries()
    except BaseException:
        lock.release()
        raise
    if removed:
        notice(f"removed {len(removed)} unfinished temporary file(s) a stopped process left: {', '.join(p.name for p in removed)}")
    return lock


def create_run_dir(parent: str, name: str, command: str) -> RunDir:
    """A new run directory, claimed atomically and held for ``command``; removed again if it cannot be held."""
    run = RunDir.create(parent, name)
    try:
        hold_run_dir(run, command)
    except BaseException:
        run.discard()
        raise
    return run


def _inside(path: Path, root: Path) -> bool:
    """``path`` exists and lies in ``root``, by its written form or after following symlinks."""
    if not path.exists():
        return False  # nothing there to read
    for candidate, base in ((Path(os.path.abspath(path)), Path(os.path.abspath(root))), (path.resolve(), root.resolve())):
        if candidate == base or base in candidate.parents:
            return True
    return False


def _option_paths(options: Any, data_dir: Path) -> Iterable[tuple[str, Path]]:
    if not isinstance(options, dict):
        return
    for key, value in options.items():
        if isinstance(value, str) and value:
            given = Path(value).expanduser()
            for candidate in ((given,) if given.is_absolute() else (data_dir / given, given)):
                yield f"task.options.{key}", candidate


def check_saved_data_paths(payload: dict[str, Any], run: RunDir) -> None:
    """Refuse a saved config that reads task data from inside the run directory (see the module doc)."""
    task = payload.get("config", {}).get("task", {}) if isinstance(payload.get("config"), dict) else {}
    data_dir = Path(str(task.get("data_dir", "data"))).expanduser()
    found = [("task.data_dir", data_dir)] if _inside(data_dir, run.root) else []
    found += [(key, path) for key, path in _option_paths(task.get("options"), data_dir) if _inside(path, run.root)]
    if found:
        listed = ", ".join(f"{key} -> {path}" for key, path in found)
        raise RunDirError(
            f"the checkpoint's saved config reads task data from inside the run directory {run.root} ({listed}). "
            "A run directory may come from someone else, so data it brings along is not read. Pass "
            "--data-dir DIR to read the data from a directory you trust."
        )


def read_run_dir(run: RunDir, command: str, notice: Callable[[str], None] = warn) -> RunDirLock | None:
    """For a command that only reads the run (``export --out``): the lock when it can be had; a read-only
    run directory is read without one (nothing there is written), a run in use is still refused."""
    try:
        return hold_run_dir(run, command, notice)
    except RunDirInUseError:
        raise
    except RunDirError:
        notice(f"{run.root} is not writable; reading it without taking its lock")
        return None


def open_run(
    run_dir: str,
    command: str,
    *,
    data_dir: str | None = None,
    writes_run_dir: bool = True,
    notice: Callable[[str], None] = warn,
    checkpoint: str | None = None,
) -> tuple[RunDir, Path, dict[str, Any]]:
    """The run directory held for ``command``, its newest intact checkpoint (a damaged newer one is named
    and passed over) and the payload, ``data_dir`` (``--data-dir``) applied to its saved config.
    ``writes_run_dir``: False for a command that writes elsewhere (a read-only run directory is then fine).
    ``checkpoint``: that one instead (``--checkpoint``): a file, or a number N for ``round_0000N.pt``."""
    run = RunDir.open(run_dir)
    if writes_run_dir:
        hold_run_dir(run, command, notice)
    else:
        read_run_dir(run, command, notice)

    def skipped(path: Path, error: CheckpointError) -> None:
        notice(f"{error}; using the newest intact checkpoint before it (the damaged file is left in place)")

    if checkpoint is None:
        path, payload = load_newest_intact(run.checkpoints, skipped)
    else:
        path = chosen_checkpoint(run, checkpoint)
        payload = load_checkpoint(path)
    if data_dir is not None and isinstance(payload.get("config"), dict):
        payload["config"].setdefault("task", {})["data_dir"] = data_dir
    check_saved_data_paths(payload, run)
    return run, path, payload


def chosen_checkpoint(run: RunDir, checkpoint: str) -> Path:
    """``--checkpoint``: a round number (``3`` -> ``checkpoints/round_00003.pt``, where round 3 starts) or a
    path; a missing one is an error that lists the checkpoints there are."""
    from esper_core.run.checkpoint import list_checkpoints

    text = checkpoint.strip()
    path = checkpoint_path(run.checkpoints, int(text)) if text.isdigit() else Path(text).expanduser()
    if not path.is_file():
        there = ", ".join(str(n) for n, _ in list_checkpoints(run.checkpoints)) or "none"
        raise CheckpointError(f"--checkpoint {checkpoint}: no checkpoint file at {path}; rounds with one: {there}")
    return path


def start_or_discard(runner: Any, run: RunDir) -> None:
    """``runner.start()``; if it fails (a full disk, a plugin), remove the half-made run directory so that
    neither a leftover nor its name gets in the way of the next attempt."""
    try:
        runner.start()
    except BaseException:
        try:
            runner.close()
        except OSError:
            pass
        run.discard()
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            cli_state(ctx).run_root = None  # nothing is left to resume
        raise


def check_contracts_if_strict(ctx: click.Context, parts: Any) -> None:
    """``--strict-plugins``: every enabled blueprint and blend style must pass its contract probe."""
    if not cli_state(ctx).strict_plugins:
        return
    from esper_core.run.contract_probe import contract_problems

    problems = contract_problems(parts)
    if problems:
        listed = "\n  - ".join(problems)
        raise click.ClickException(
            f"--strict-plugins: {len(problems)} plugin contract problem(s):\n  - {listed}\n"
            "Fix or uninstall the plugin, leave it out with --blueprints / actions.blend_styles, or drop "
            "--strict-plugins to let the run disable a broken plugin when it is first chosen."
        )
