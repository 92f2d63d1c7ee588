"""`esper eval`: the saved policy, deterministic, one episode per env; held-out test accuracy and the
network each env grew (blueprint, style, alpha and stage per slot).

The run's enabled observers hear it as ``eval_start``, one ``eval_result`` per env and ``eval_end``
(never ``run_start``: an evaluation is not a resumed run, and sinks must not purge curves for it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import click

from esper_core.cli.options import USER_ERRORS, as_click_error, registry_for
from esper_core.cli.run import DATA_DIR_HELP, config_from_checkpoint, open_latest
from esper_core.config.sections import EsperConfig, ObserversConfig
from esper_core.events import EvalEnded, EvalResult, EvalStarted
from esper_core.run.export import morphology_rows, slot_records
from esper_core.run.progress import Progress
from esper_core.run.rundir import RunDir, write_json_atomic


@attrs.frozen(eq=False)
class Replay:
    """A checkpoint's policy replayed for one deterministic episode per env; the envs keep their networks."""

    run: RunDir
    checkpoint: Path
    round: int
    runner: Any
    rows: list[dict[str, Any]]  # per env: accuracies, counts, parameters and the slots


def replay_final_episode(
    ctx: click.Context,
    run_dir: str,
    progress: Progress,
    *,
    observers: bool,
    data_dir: str | None = None,
    writes_run_dir: bool = True,
) -> Replay:
    """Restore the latest checkpoint and play one deterministic episode per env (``Runner.evaluate``).

    ``observers``: tell the run's enabled observers (eval_start / eval_result / eval_end); without, the
    observers are not even built (their optional dependencies need not be installed).
    """
    from esper_core.run.runner import Runner

    try:
        run, path, payload = open_latest(
            run_dir, f"esper {ctx.info_name or 'eval'}", data_dir, writes_run_dir=writes_run_dir
        )
        config: EsperConfig = config_from_checkpoint(payload)
        if not observers:
            config = attrs.evolve(config, observers=ObserversConfig())
        runner = Runner.build(config, registry_for(ctx), progress=progress)
        runner.restore(payload, str(path), announce=False)
        round_index = int(payload["round"])
        runner.telemetry.emit(
            EvalStarted(
                run_name=run.name, run_dir=str(run.root.resolve()), checkpoint=str(path), round=round_index,
                n_envs=len(runner.envs), config=payload["config"],
            )
        )
        rows = runner.evaluate()
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    for row, env in zip(rows, runner.envs):
        records = slot_records(env.model)
        row["host_params"] = env.model.host_param_count()
        row["seed_params"] = env.model.seed_param_count()
        row["episode"] = env.episode
        row["slots"] = morphology_rows(records)
    return Replay(run=run, checkpoint=path, round=round_index, runner=runner, rows=rows)


def morphology_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """One line per slot that holds a seed (an env without any gets one line saying so)."""
    lines: list[list[Any]] = []
    for row in rows:
        seeded = [s for s in row["slots"] if s["blueprint"] is not None]
        for s in seeded:
            lines.append([row["env"], s["slot"], s["stage"], s["blueprint"], s["style"], s["alpha"], s["seed_params"],
                          "yes" if s["in_network"] else "no"])
        if not seeded:
            lines.append([row["env"], "-", "no seeds", "-", "-", "-", "-", "-"])
    return lines


# ------------------------------------------------------------------------------------------ eval
@click.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--no-observers", is_flag=True, help="Do not send the results to the run's enabled observers.")
@click.option("--data-dir", default=None, help=DATA_DIR_HELP)
@click.pass_context
def eval_command(ctx: click.Context, run_dir: str, no_observers: bool, data_dir: str | None) -> None:
    """Run the saved policy deterministically for one episode per env; report held-out test accuracy
    and the network each env grew. Writes RUN_DIR/eval.json."""
    progress = Progress()
    replay = replay_final_episode(ctx, run_dir, progress, observers=not no_observers, data_dir=data_dir)
    rows, telemetry = replay.rows, replay.runner.telemetry
    try:
        for row in rows:
            telemetry.emit(
                EvalResult(
                    round=replay.round, env=row["env"], episode=row["episode"], test_acc=row["test_acc"],
                    final_val_acc=row["final_val_acc"], host_params=row["host_params"], seed_params=row["seed_params"],
                    params_added=row["params_added"], fossilized=row["fossilized"], pruned=row["pruned"],
                    slots=tuple(row["slots"]),
                )
            )
        mean = sum(r["test_acc"] for r in rows) / len(rows)
        telemetry.emit(EvalEnded(round=replay.round, mean_test_acc=mean))
    finally:
        replay.runner.close()
    result = {"checkpoint": str(replay.checkpoint), "round": replay.round, "envs": rows}
    write_json_atomic(replay.run.root / "eval.json", result)
    progress.table(
        ["env", "test acc", "final val acc", "host params", "params added", "fossilized", "pruned"],
        [[r["env"], r["test_acc"], r["final_val_acc"], r["host_params"], r["params_added"], r["fossilized"], r["pruned"]]
         for r in rows],
        f"eval of {replay.checkpoint.name} (deterministic policy, one episode per env)",
    )
    progress.table(
        ["env", "slot", "stage", "blueprint", "style", "alpha", "seed params", "in network"],
        morphology_table(rows),
        "final morphology per env (slots holding a seed)",
    )
    progress.notice(f"mean test accuracy {mean:.4f}; written to {replay.run.root / 'eval.json'}")
