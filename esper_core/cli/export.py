"""`esper export`: the network each env grew, as a standalone artefact (``esper_core.run.export``)."""

from __future__ import annotations

from pathlib import Path

import click

from esper_core.cli.eval import morphology_table, replay_final_episode
from esper_core.run.export import export_env
from esper_core.run.progress import Progress


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write (default: RUN_DIR/export/round_NNNNN); one folder per env.")
@click.option("--env", "envs", type=click.IntRange(min=0), multiple=True,
              help="Export only this env (repeatable; default: every env).")
@click.pass_context
def export_command(ctx: click.Context, run_dir: str, out_dir: Path | None, envs: tuple[int, ...]) -> None:
    """Write the network grown in each env's final episode: fossilized seeds kept, pruned ones gone.

    Replays one deterministic episode per env with the saved policy (the one `esper eval` plays), then
    writes ENV/manifest.json and ENV/state_dict.pt. Load it with
    esper_core.run.export.load_grown_network(folder).
    """
    progress = Progress()
    replay = replay_final_episode(ctx, run_dir, progress, observers=False, writes_run_dir=out_dir is None)
    try:
        known = [env.index for env in replay.runner.envs]
        unknown = sorted(set(envs) - set(known))
        if unknown:
            raise click.BadParameter(f"env(s) {unknown} not in this run (it has envs {known})", param_hint="--env")
        target = out_dir if out_dir is not None else replay.run.root / "export" / f"round_{replay.round:05d}"
        rows = {row["env"]: row for row in replay.rows}
        written = []
        for env in replay.runner.envs:
            if envs and env.index not in envs:
                continue
            folder = target / f"env{env.index}"
            manifest = export_env(
                env, folder, run_name=replay.run.name, checkpoint=str(replay.checkpoint), round_index=replay.round,
                registry=replay.runner.registry, test_acc=rows[env.index]["test_acc"],
            )
            written.append((folder, manifest))
    finally:
        replay.runner.close()
    progress.table(
        ["env", "slot", "stage", "blueprint", "style", "alpha", "seed params", "in network"],
        morphology_table([rows[m.env] for _, m in written]),
        "exported morphology (seeds 'in network' are part of the exported network)",
    )
    for folder, manifest in written:
        progress.notice(
            f"env {manifest.env}: {manifest.parameters:,} parameters, test acc {manifest.test_acc:.4f} -> {folder}"
        )
