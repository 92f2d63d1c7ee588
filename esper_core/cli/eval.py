"""`esper eval`: the saved policy, deterministic, one episode per env (or ``--episodes N``); held-out test
accuracy and the network each env grew (blueprint, style, alpha and stage per slot).

Every evaluation is kept: ``RUN_DIR/eval-<round>-<n>.json`` (``n`` counts evaluations of one checkpoint,
from 1) and ``RUN_DIR/eval.json``, the latest one.

The run's enabled observers hear it as ``eval_start``, one ``eval_result`` per env and ``eval_end``
(never ``run_start``: an evaluation is not a resumed run, and sinks must not purge curves for it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import click

from esper_core.cli.options import USER_ERRORS, as_click_error, registry_for
from esper_core.cli.access import open_run
from esper_core.cli.run import DATA_DIR_HELP, config_from_checkpoint
from esper_core.config.sections import EsperConfig, ObserversConfig
from esper_core.events import EvalEnded, EvalResult, EvalStarted
from esper_core.records import TaskMetric
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
    rows: list[dict[str, Any]]  # per env and episode: accuracies, counts, parameters and the slots


def replay_final_episode(
    ctx: click.Context,
    run_dir: str,
    progress: Progress,
    *,
    observers: bool,
    data_dir: str | None = None,
    writes_run_dir: bool = True,
    checkpoint: str | None = None,
    device: str | None = None,
    episodes: int = 1,
) -> Replay:
    """Restore the latest checkpoint (or ``checkpoint``) and play ``episodes`` deterministic episodes per
    env (``Runner.evaluate``); the envs keep the networks of the last one.

    ``observers``: tell the run's enabled observers (eval_start / eval_result / eval_end); without, the
    observers are not even built (their optional dependencies need not be installed). ``device``: evaluate
    there instead of on the run's own devices.
    """
    from esper_core.run.runner import Runner

    try:
        run, path, payload = open_run(
            run_dir, f"esper {ctx.info_name or 'eval'}", data_dir=data_dir, writes_run_dir=writes_run_dir,
            checkpoint=checkpoint,
        )
        config: EsperConfig = config_from_checkpoint(payload)
        if not observers:
            config = attrs.evolve(config, observers=ObserversConfig())
        if device is not None:
            config = attrs.evolve(config, device=attrs.evolve(config.device, device=device, devices=()))
        runner = Runner.build(config, registry_for(ctx), progress=progress)
        runner.restore(payload, str(path), announce=False, any_device=device is not None)
        round_index = int(payload["round"])
        runner.telemetry.emit(
            EvalStarted(
                run_name=run.name, run_dir=str(run.root.resolve()), checkpoint=str(path), round=round_index,
                n_envs=len(runner.envs), config=payload["config"],
            )
        )
        rows: list[dict[str, Any]] = []
        for _ in range(episodes):
            played = runner.evaluate()
            for row, env in zip(played, runner.envs):
                row["host_params"] = env.model.host_param_count()
                row["seed_params"] = env.model.seed_param_count()
                row["episode"] = env.episode
                row["slots"] = morphology_rows(slot_records(env.model))
            rows.extend(played)
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    return Replay(run=run, checkpoint=path, round=round_index, runner=runner, rows=rows)


def history_path(run: RunDir, round_index: int) -> Path:
    """``eval-<round>-<n>.json`` with the first ``n`` (from 1) not taken yet: earlier results are kept."""
    n = 1
    while (run.root / f"eval-{round_index}-{n}.json").exists():
        n += 1
    return run.root / f"eval-{round_index}-{n}.json"


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
@click.option("--checkpoint", default=None, metavar="ROUND|FILE",
              help="Evaluate this checkpoint: a round number (3: checkpoints/round_00003.pt, where round 3 "
              "starts) or a file (default: the newest intact one).")
@click.option("--episodes", type=click.IntRange(min=1, max=10_000), default=1, show_default=True,
              help="Deterministic episodes per env (each with a fresh host).")
@click.option("--device", default=None, help="Evaluate on this device (cpu, cuda, cuda:1 ...) instead of the run's own.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of tables.")
@click.option("--no-observers", is_flag=True, help="Do not send the results to the run's enabled observers.")
@click.option("--data-dir", default=None, help=DATA_DIR_HELP)
@click.pass_context
def eval_command(
    ctx: click.Context, run_dir: str, checkpoint: str | None, episodes: int, device: str | None, as_json: bool,
    no_observers: bool, data_dir: str | None,
) -> None:
    """Run the saved policy deterministically for one episode per env (--episodes N for more); report
    held-out test accuracy (the task's metric, e.g. bits per byte) and the network each env grew. Writes RUN_DIR/eval-ROUND-N.json (every
    evaluation is kept) and RUN_DIR/eval.json (the latest)."""
    progress = Progress()
    replay = replay_final_episode(
        ctx, run_dir, progress, observers=not no_observers, data_dir=data_dir, checkpoint=checkpoint, device=device,
        episodes=episodes,
    )
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
        devices = [str(d) for d in replay.runner.devices]
        metric: TaskMetric = replay.runner.metric
    finally:
        replay.runner.close()
    result = {
        "checkpoint": str(replay.checkpoint), "round": replay.round, "episodes": episodes, "devices": devices,
        "mean_test_acc": mean, "metric": metric.to_dict(), "mean_test_metric": metric.value_of(mean), "envs": rows,
    }
    kept = history_path(replay.run, replay.round)
    write_json_atomic(kept, result)
    write_json_atomic(replay.run.root / "eval.json", result)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    # the task's metric, not its score: accuracy as before, e.g. bits per byte for a language model
    progress.table(
        ["env", "episode", f"test {metric.short}", f"final val {metric.short}", "host params", "params added",
         "fossilized", "pruned"],
        [[r["env"], r["episode"], metric.value_of(r["test_acc"]), metric.value_of(r["final_val_acc"]), r["host_params"],
          r["params_added"], r["fossilized"], r["pruned"]] for r in rows],
        f"eval of {replay.checkpoint.name} (deterministic policy, {episodes} episode(s) per env)",
    )
    progress.table(
        ["env", "slot", "stage", "blueprint", "style", "alpha", "seed params", "in network"],
        morphology_table([r for r in rows if r["episode"] == max(x["episode"] for x in rows if x["env"] == r["env"])]),
        "final morphology per env (slots holding a seed, last episode)",
    )
    shown = f"{metric.label} {mean:.4f}" if metric.is_accuracy else f"{metric.label} {metric.value_of(mean):.4f} (score {mean:.4f})"
    progress.notice(f"mean test {shown}; written to {kept} (latest also in eval.json)")
