"""`esper eval`: the saved policy, deterministic, one episode per env; held-out test accuracy."""

from __future__ import annotations

import click

from esper_core.cli.options import USER_ERRORS, as_click_error, registry_for
from esper_core.cli.run import config_from_checkpoint, open_latest
from esper_core.run.progress import Progress
from esper_core.run.rundir import write_json_atomic


# ------------------------------------------------------------------------------------------ eval
@click.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.pass_context
def eval_command(ctx: click.Context, run_dir: str) -> None:
    """Run the saved policy deterministically for one episode per env; report held-out test accuracy."""
    from esper_core.run.runner import Runner

    progress = Progress()
    try:
        run, path, payload = open_latest(run_dir)
        runner = Runner.build(config_from_checkpoint(payload), registry_for(ctx), progress=progress)
        runner.restore(payload, str(path))
        rows = runner.evaluate()
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    result = {"checkpoint": str(path), "round": int(payload["round"]), "envs": rows}
    write_json_atomic(run.root / "eval.json", result)
    progress.table(
        ["env", "test acc", "final val acc", "params added", "fossilized", "pruned"],
        [[r["env"], r["test_acc"], r["final_val_acc"], r["params_added"], r["fossilized"], r["pruned"]] for r in rows],
        f"eval of {path.name} (deterministic policy, one episode per env)",
    )
    mean = sum(r["test_acc"] for r in rows) / len(rows)
    progress.notice(f"mean test accuracy {mean:.4f}; written to {run.root / 'eval.json'}")
