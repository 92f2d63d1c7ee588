"""`esper run` and `esper resume`: the run loop on the command line (they share how a run finishes).

Exit codes: 0 done, 1 a run-time error (message, no traceback), 2 a bad configuration or usage,
130 stopped by Ctrl-C or SIGTERM after writing its checkpoint (continue with `esper resume RUN_DIR`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import click

from esper_core.cli.options import (
    USER_ERRORS,
    ConfigUsageError,
    as_click_error,
    config_from_params,
    config_options,
    registry_for,
)
from esper_core.cli.report import write_report
from esper_core.config.loading import ConfigError, load_config
from esper_core.events import ReportWritten
from esper_core.config.sections import EsperConfig
from esper_core.validators import SettingError
from esper_core.run.progress import Progress, format_duration
from esper_core.run.rundir import RunDir, default_run_name
from esper_core.cli.access import check_contracts_if_strict, create_run_dir, open_run, start_or_discard
from esper_core.run.backend import BACKENDS, choose_backend

#: Exit code after a graceful Ctrl-C (the shell convention for SIGINT).
EXIT_INTERRUPTED = 130
#: ``--data-dir`` of the commands that continue a saved run.
DATA_DIR_HELP = (
    "Read the task's data from this directory instead of the saved task.data_dir (required when the saved "
    "one lies inside the run directory, which is not trusted)."
)


def _comma_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise click.BadParameter(f"expected comma-separated names, got {text!r}")
    return names


def _observer_names(observers: tuple[str, ...]) -> list[str] | None:
    """``--observer a --observer b,c`` -> ``["a", "b", "c"]`` (None when the flag was not given)."""
    if not observers:
        return None
    return [name for text in observers for name in _comma_list(text) or ()]


def _extra_assignments(
    devices: str | None, blueprints: str | None, download: bool | None, observers: tuple[str, ...] = ()
) -> list[str]:
    """Run-only flags as ``--set`` assignments (placed before the user's own ``--set``, which win)."""
    extra = []
    names = _observer_names(observers)
    if names is not None:
        extra.append(f"observers.enabled={json.dumps(names)}")
    if devices is not None:
        extra.append(f"device.devices={json.dumps(_comma_list(devices))}")
    if blueprints is not None:
        extra.append(f"actions.blueprints={json.dumps(_comma_list(blueprints))}")
    if download is not None:
        extra.append(f"task.download={json.dumps(download)}")
    return extra


def _summary_table(progress: Progress, summary: dict[str, Any]) -> None:
    rows = [
        [r["env"], r["final_val_acc"], r["best_val_acc"], r["params_added"], r["germinated"], r["fossilized"], r["pruned"]]
        for r in summary.get("last_episode", [])
    ]
    if rows:
        progress.table(
            ["env", "final acc", "best acc", "params added", "germinated", "fossilized", "pruned"],
            rows,
            "last episode per env",
        )
    seeds = summary["seeds"]
    progress.notice(
        f"{summary['status']}: {summary['rounds_completed']} round(s), {summary['env_steps']} env steps | seeds: "
        f"{seeds['germinated']} germinated, {seeds['fossilized']} fossilized, {seeds['pruned']} pruned, "
        f"{seeds['faults']} fault(s) recovered | wall time {format_duration(summary['wall_time_s'])}"
    )


def _finish(runner: Any, rounds: int, progress: Progress) -> None:
    try:
        outcome = runner.run(rounds)
        _report_to_observers(runner, outcome.rounds_completed)
    finally:
        runner.close()
    _summary_table(progress, outcome.summary)
    if runner.run_dir is not None:
        progress.notice(f"run directory: {runner.run_dir.root}")
    if outcome.status == "interrupted":
        progress.notice(f"continue with: esper resume {runner.run_dir.root if runner.run_dir else 'RUN_DIR'}")
        raise SystemExit(EXIT_INTERRUPTED)


def _report_to_observers(runner: Any, rounds_completed: int) -> None:
    """With observers enabled, write the run's report and hand them its figures (a sink that takes images
    shows them beside the curves). Without observers nothing is written: `esper report` does that."""
    if runner.run_dir is None or not runner.parts.observers:
        return
    _, plots, _ = write_report(runner.run_dir)
    runner.telemetry.notify(ReportWritten(round=rounds_completed, figures={p.stem: str(p) for p in plots}))


def config_from_checkpoint(payload: dict[str, Any]) -> EsperConfig:
    """The exact configuration a checkpoint was written under (its resolved preset included). No host
    adjustments are looked up: the saved config is complete, and today's adjustments must not change an
    old run."""
    saved = payload["config"]
    return load_config(overrides=saved, preset=saved["run"]["preset"], overrides_source="checkpoint")


def extended_plan(config: EsperConfig, rounds: int) -> EsperConfig:
    """Resumed past the plan, the plan grows to ``rounds`` (summary.json's rounds_planned, the checkpoints'
    config), so a later plain `esper resume` has nothing left to do and the totals stay true."""
    if rounds <= config.run.rounds:
        return config
    return attrs.evolve(config, run=attrs.evolve(config.run, rounds=rounds))


def with_observers(config: EsperConfig, names: list[str] | None, none: bool) -> EsperConfig:
    """The config with ``observers.enabled`` replaced for this session (observers never change results)."""
    if none and names:
        raise click.UsageError("--observer and --no-observers contradict each other")
    if none:
        names = []
    if names is None:
        return config
    try:
        return attrs.evolve(config, observers=attrs.evolve(config.observers, enabled=tuple(names)))
    except SettingError as error:
        raise ConfigUsageError(f"--observer: {error.reason}") from None


def backend_options(command: Any) -> Any:
    """``--backend`` and ``--ray-address``: where the envs run. Not part of the run's configuration: a run
    gives the same results on every backend, so a run started on Ray may be resumed locally and back."""
    command = click.option(
        "--ray-address", default=None, metavar="ADDRESS",
        help="Ray cluster to join (e.g. ray://head:10001 or auto); default: start a local one. Needs --backend ray.",
    )(command)
    return click.option(
        "--backend", type=click.Choice(BACKENDS), default="local", show_default=True,
        help="Where env groups run: this process (one thread per device) or Ray actors (pip install "
        "'esper-grow[ray]'; docs/cluster.md).",
    )(command)


def open_latest(
    run_dir: str, command: str = "esper", data_dir: str | None = None, *, writes_run_dir: bool = True
) -> tuple[RunDir, Path, dict[str, Any]]:
    """The run directory, held exclusively by this command, and its newest intact checkpoint
    (``esper_core.cli.access.open_run``: lock, leftovers, damaged checkpoints, saved data paths)."""
    return open_run(run_dir, command, data_dir=data_dir, writes_run_dir=writes_run_dir)


# ------------------------------------------------------------------------------------------- run
@click.command("run")
@config_options
@click.option("--devices", default=None, help="Spread envs over these devices, comma-separated (cuda:0,cuda:1).")
@click.option("--blueprints", default=None, help="Blueprints the policy may germinate, comma-separated "
              "(default: every registered one that fits the host).")
@click.option("--download/--no-download", default=None, help="Let a task download its dataset if missing.")
@click.option("--observer", "observers", metavar="NAME", multiple=True,
              help="Switch on an observer plugin, e.g. tensorboard or wandb (repeatable or comma-separated; "
              "replaces observers.enabled). They write under the run directory. [observers.enabled]")
@click.option("--quiet", "-q", is_flag=True, help="Only notices and the final summary.")
@backend_options
@click.pass_context
def run_command(ctx: click.Context, devices: str | None, blueprints: str | None, download: bool | None,
                observers: tuple[str, ...], quiet: bool, backend: str, ray_address: str | None,
                **params: Any) -> None:
    """Grow hosts under a policy: rounds of one episode per env, then a policy update.

    Writes runs/NAME/ (config.json, events.jsonl, metrics.jsonl, checkpoints/, summary.json).
    Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint and exits (code 130).
    """
    from esper_core.run.runner import Runner

    params["assignments"] = (
        *_extra_assignments(devices, blueprints, download, observers), *(params.get("assignments") or ())
    )
    registry = registry_for(ctx)
    config = config_from_params(params, registry)
    progress = Progress(quiet=quiet)
    try:
        runner = Runner.build(config, registry, progress=progress, backend=choose_backend(backend, ray_address))
        name = config.run.name or default_run_name(config.host.name, config.policy.name)
        check_contracts_if_strict(ctx, runner.parts)
        run = create_run_dir(config.run.run_dir, name, f"esper run {name}")
        runner.use_run_dir(run)
        progress.notice(
            f"esper run {name}: task {runner.task.spec.name}, host {config.host.name}, policy {config.policy.name}, "
            f"reward {config.reward.name}"
        )
        progress.notice(
            f"  preset {config.run.preset}, {config.run.envs} env(s) on {', '.join(str(d) for d in runner.devices)}, "
            f"{config.run.rounds} round(s) (numbered 0-{config.run.rounds - 1}) x {config.run.episode_length} steps"
        )
        start_or_discard(runner, run)
    except ConfigError as error:
        raise ConfigUsageError(str(error)) from None
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    _finish(runner, config.run.rounds, progress)


# ---------------------------------------------------------------------------------------- resume
@click.command("resume")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--rounds", type=click.IntRange(min=0), default=None,
              help="Rounds to run now (default: the rest of the planned run.rounds).")
@click.option("--observer", "observers", metavar="NAME", multiple=True,
              help="Observers for this session instead of the run's own observers.enabled (repeatable).")
@click.option("--no-observers", is_flag=True, help="Switch every observer off for this session.")
@click.option("--data-dir", default=None, help=DATA_DIR_HELP)
@click.option("--quiet", "-q", is_flag=True, help="Only notices and the final summary.")
@backend_options
@click.pass_context
def resume_command(
    ctx: click.Context, run_dir: str, rounds: int | None, observers: tuple[str, ...], no_observers: bool,
    data_dir: str | None, quiet: bool, backend: str, ray_address: str | None,
) -> None:
    """Continue a run from its latest checkpoint, exactly where it stopped.

    Refuses a checkpoint whose action-space layout or plugin set differs from what is installed now.
    Observers only watch, so --observer / --no-observers may change them without changing the run.
    """
    from esper_core.run.runner import Runner

    progress = Progress(quiet=quiet)
    try:
        run, path, payload = open_latest(run_dir, "esper resume", data_dir)
        config = with_observers(config_from_checkpoint(payload), _observer_names(observers), no_observers)
        done = int(payload["round"])
        todo = rounds if rounds is not None else max(0, config.run.rounds - done)
        if todo == 0:
            progress.notice(f"{run.root}: {done} of {config.run.rounds} planned round(s) done; pass --rounds N to go on")
            return
        config = extended_plan(config, done + todo)
        runner = Runner.build(config, registry_for(ctx), progress=progress, backend=choose_backend(backend, ray_address))
        check_contracts_if_strict(ctx, runner.parts)
        runner.use_run_dir(run)
        runner.restore(payload, str(path))
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    progress.notice(f"resuming {run.root} from {path.name}: round {done} is next; {todo} more round(s)")
    _finish(runner, todo, progress)
