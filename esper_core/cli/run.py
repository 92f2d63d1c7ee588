"""`esper run` and `esper resume`: the run loop on the command line (they share how a run finishes).

Exit codes: 0 done, 1 a run-time error (message, no traceback), 2 a bad configuration or usage,
130 stopped by Ctrl-C after writing its checkpoint (continue with `esper resume RUN_DIR`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from esper_core.cli.options import (
    USER_ERRORS,
    ConfigUsageError,
    as_click_error,
    config_from_params,
    config_options,
    registry_for,
)
from esper_core.config.loading import ConfigError, load_config
from esper_core.config.sections import EsperConfig
from esper_core.run.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from esper_core.run.progress import Progress
from esper_core.run.rundir import RunDir, default_run_name

#: Exit code after a graceful Ctrl-C (the shell convention for SIGINT).
EXIT_INTERRUPTED = 130


def _comma_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise click.BadParameter(f"expected comma-separated names, got {text!r}")
    return names


def _extra_assignments(devices: str | None, blueprints: str | None, download: bool | None) -> list[str]:
    """Run-only flags as ``--set`` assignments (placed before the user's own ``--set``, which win)."""
    extra = []
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
        f"{summary['status']}: {summary['rounds_completed']} round(s), {summary['env_steps']} env steps, "
        f"seeds over the run: {seeds['germinated']} germinated, {seeds['fossilized']} fossilized, "
        f"{seeds['pruned']} pruned, {seeds['faults']} fault(s) recovered | wall time {summary['wall_time_s']:.1f}s"
    )


def _finish(runner: Any, rounds: int, progress: Progress) -> None:
    try:
        outcome = runner.run(rounds)
    finally:
        runner.close()
    _summary_table(progress, outcome.summary)
    if runner.run_dir is not None:
        progress.notice(f"run directory: {runner.run_dir.root}")
    if outcome.status == "interrupted":
        progress.notice(f"continue with: esper resume {runner.run_dir.root if runner.run_dir else 'RUN_DIR'}")
        raise SystemExit(EXIT_INTERRUPTED)


def config_from_checkpoint(payload: dict[str, Any]) -> EsperConfig:
    """The exact configuration a checkpoint was written under (its resolved preset included)."""
    saved = payload["config"]
    return load_config(overrides=saved, preset=saved["run"]["preset"], overrides_source="checkpoint")


def open_latest(run_dir: str) -> tuple[RunDir, Path, dict[str, Any]]:
    run = RunDir.open(run_dir)
    path = latest_checkpoint(run.checkpoints)
    if path is None:
        raise CheckpointError(f"{run.checkpoints} holds no checkpoint; the run never finished its setup")
    return run, path, load_checkpoint(path)


# ------------------------------------------------------------------------------------------- run
@click.command("run")
@config_options
@click.option("--devices", default=None, help="Spread envs over these devices, comma-separated (cuda:0,cuda:1).")
@click.option("--blueprints", default=None, help="Blueprints the policy may germinate, comma-separated "
              "(default: every registered one that fits the host).")
@click.option("--download/--no-download", default=None, help="Let a task download its dataset if missing.")
@click.option("--quiet", "-q", is_flag=True, help="Only notices and the final summary.")
@click.pass_context
def run_command(ctx: click.Context, devices: str | None, blueprints: str | None, download: bool | None,
                quiet: bool, **params: Any) -> None:
    """Grow hosts under a policy: rounds of one episode per env, then a policy update.

    Writes runs/NAME/ (config.json, events.jsonl, metrics.jsonl, checkpoints/, summary.json).
    Ctrl-C finishes the current step, writes a checkpoint and exits (code 130).
    """
    from esper_core.run.runner import Runner

    params["assignments"] = (*_extra_assignments(devices, blueprints, download), *(params.get("assignments") or ()))
    config = config_from_params(params)
    registry = registry_for(ctx)
    progress = Progress(quiet=quiet)
    try:
        runner = Runner.build(config, registry, progress=progress)
        name = config.run.name or default_run_name(config.host.name, config.policy.name)
        runner.use_run_dir(RunDir.create(config.run.run_dir, name))
        progress.notice(
            f"esper run {name}: task {runner.task.spec.name}, host {config.host.name}, policy {config.policy.name}, "
            f"reward {config.reward.name}, preset {config.run.preset}, {config.run.envs} env(s) on "
            f"{', '.join(str(d) for d in runner.devices)}, {config.run.rounds} round(s) x {config.run.episode_length} steps"
        )
        runner.start()
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
@click.option("--quiet", "-q", is_flag=True, help="Only notices and the final summary.")
@click.pass_context
def resume_command(ctx: click.Context, run_dir: str, rounds: int | None, quiet: bool) -> None:
    """Continue a run from its latest checkpoint, exactly where it stopped.

    Refuses a checkpoint whose action-space layout or plugin set differs from what is installed now.
    """
    from esper_core.run.runner import Runner

    progress = Progress(quiet=quiet)
    try:
        run, path, payload = open_latest(run_dir)
        config = config_from_checkpoint(payload)
        runner = Runner.build(config, registry_for(ctx), progress=progress)
        runner.use_run_dir(run)
        runner.restore(payload, str(path))
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    done = int(payload["round"])
    todo = rounds if rounds is not None else max(0, config.run.rounds - done)
    if todo == 0:
        runner.close()
        progress.notice(f"{run.root}: {done} of {config.run.rounds} planned round(s) done; pass --rounds N to go on")
        return
    progress.notice(f"resuming {run.root} from {path.name} (round {done}); {todo} more round(s)")
    _finish(runner, todo, progress)
