"""`esper report`: numbers (and, with matplotlib installed, plots) from run directories' files alone.

Why from files: a report must work for a run that was killed, is still running, or came from another
machine; it never needs the plugins that produced it. One run: its summary, per-round table, per-blueprint
counts and policy health, written with its figures to ``RUN/report/`` (curves with the spread over envs,
the seed lifecycle timeline, the final morphology, policy health with its healthy bands). Several runs:
each one's report, plus a comparison (table, overlaid curves) in ``--out``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

import click

from esper_core.cli.options import USER_ERRORS, as_click_error
from esper_core.cli.report_data import episode_length_of, final_morphology, lifecycle, spreads
from esper_core.cli.report_health import (  # noqa: F401 - TABLE_ROUNDS, warning_kind: part of this module's API
    TABLE_ROUNDS,
    entropy_floor,
    plot_policy_health,
    policy_health,
    render_policy_health,
    warning_kind,
)
from esper_core.cli.report_plots import TIMELINE_ENVS, TIMELINE_ROUNDS, plot_curves, plot_lifecycle, plot_morphology
from esper_core.records import TaskMetric
from esper_core.run.progress import render_table
from esper_core.run.rundir import RunDir, write_json_atomic
from esper_core.run.telemetry import read_jsonl


def _described(run: RunDir) -> dict[str, Any]:
    """config.json as written by the run ({} when missing or unreadable: a report still works without it)."""
    try:
        described = run.read_config()
    except (OSError, ValueError):
        return {}
    return described if isinstance(described, dict) else {}


def build_report(run: RunDir) -> dict[str, Any]:
    """Per-round curves (with the spread over envs), lifecycle counts per blueprint, the action mix, each
    env's final morphology and the final summary."""
    metrics = read_jsonl(run.metrics_path)
    events = read_jsonl(run.events_path)
    described = _described(run)
    config = described.get("config", {}) if isinstance(described.get("config"), dict) else {}
    slots = list(described.get("action_layout", {}).get("slot", [])) if isinstance(described.get("action_layout"), dict) else []
    ops: Counter[str] = Counter()
    per_blueprint: dict[str, Counter[str]] = defaultdict(Counter)
    germinated_as: dict[tuple[int, int, str], str] = {}
    faults = 0
    for event in events:
        kind = event.get("type")
        if kind == "action":
            ops[event["op"]] += 1
        elif kind == "seed_transition":
            key = (event["env"], event["episode"], event["slot"])
            if event["to_stage"] == "GERMINATED":
                germinated_as[key] = event.get("blueprint") or "?"
                per_blueprint[germinated_as[key]]["germinated"] += 1
            elif event["to_stage"] in ("FOSSILIZED", "PRUNED"):
                per_blueprint[germinated_as.get(key, "?")][event["to_stage"].lower()] += 1
        elif kind == "fault":
            faults += 1
    total_ops = sum(ops.values())
    return {
        "run": run.name,
        "title": run_title(run.name, config, described.get("task")),
        # the task's metric as the run recorded it (runs from before it was: accuracy); labels come from it
        "metric": TaskMetric.from_record(described.get("metric")).to_dict(),
        "summary": run.read_summary(),
        "episode_length": episode_length_of(config, events),
        "slots": slots,
        "rounds": [
            {
                "round": m["round"],
                "mean_final_val_acc": m["env"]["mean_final_val_acc"],
                "mean_return": m["env"]["mean_return"],
                "germinated": m["env"]["germinated"],
                "fossilized": m["env"]["fossilized"],
                "pruned": m["env"]["pruned"],
                "action_mix": m["env"].get("action_mix", {}),
                "env_steps_per_s": m.get("timing", {}).get("env_steps_per_s"),
                "policy": m.get("policy", {}),
            }
            for m in metrics
        ],
        "spread": {key: spread.to_dict() for key, spread in spreads(events).items()},
        "action_mix": {op: n / total_ops for op, n in ops.most_common()} if total_ops else {},
        "blueprints": {name: dict(counts) for name, counts in sorted(per_blueprint.items())},
        "final_morphology": {
            str(env): {**state, "slots": {slot: {"stage": stage, "blueprint": bp}
                                          for slot, (stage, bp) in state["slots"].items()}}
            for env, state in final_morphology(events, slots).items()
        },
        "faults": faults,
        "policy_health": policy_health(metrics),
        "entropy_floor": entropy_floor(config),
    }


def run_title(name: str, config: dict[str, Any], task: Any = None) -> str:
    """``run NAME: synthetic / resnet / ppo_v2 / contribution, 2 envs x 10 steps, seed 0``."""
    if not config:
        return f"run {name}"
    plugins = [str(task or config.get("task", {}).get("name", "?"))]
    plugins += [str(config.get(kind, {}).get("name", "?")) for kind in ("host", "policy", "reward")]
    run = config.get("run", {})
    return (f"run {name}: {' / '.join(plugins)}, {run.get('envs', '?')} envs x {run.get('episode_length', '?')} steps, "
            f"seed {run.get('seed', '?')}")


def render_report(report: dict[str, Any]) -> str:
    parts = [report.get("title") or f"run {report['run']}"]
    summary = report.get("summary") or {}
    if summary:
        parts.append(
            f"status {summary.get('status')} | rounds done {summary.get('rounds_completed')}/{summary.get('rounds_planned')} "
            f"| env steps {summary.get('env_steps')} | wall {summary.get('wall_time_s', 0.0):.1f}s | "
            f"task {summary.get('task')} host {summary.get('host')} policy {summary.get('policy')}"
        )
    metric = TaskMetric.from_record(report.get("metric"))
    if not metric.is_accuracy:
        parts.append(f"metric: {metric.label}; the numbers below are its {metric.score_label}, higher is better")
    spread = report.get("spread", {}).get("final_val_acc", {})
    ranges = dict(zip(spread.get("round", []), zip(spread.get("min", []), spread.get("max", []))))
    rows = [
        [r["round"], r["mean_final_val_acc"], _range(ranges.get(r["round"])), r["mean_return"], r["germinated"],
         r["fossilized"], r["pruned"]]
        for r in report["rounds"]
    ]
    if rows:
        parts.append(render_table(["round", f"val {metric.score_short}", "min-max over envs", "return", "germ", "foss", "prune"], rows,
                                  "per round (means over envs)"))
    if report["blueprints"]:
        parts.append(
            render_table(
                ["blueprint", "germinated", "fossilized", "pruned"],
                [[n, c.get("germinated", 0), c.get("fossilized", 0), c.get("pruned", 0)]
                 for n, c in report["blueprints"].items()],
                "per blueprint",
            )
        )
    morphology = report.get("final_morphology") or {}
    grown = [
        [env, slot, cell["blueprint"] or "-", cell["stage"]]
        for env, state in morphology.items() for slot, cell in state["slots"].items() if cell["stage"] != "DORMANT"
    ]
    if morphology:
        parts.append(render_table(["env", "slot", "blueprint", "stage"], grown, "final morphology (last episode)")
                     if grown else "final morphology (last episode): every slot empty")
    if report["action_mix"]:
        parts.append("action mix: " + ", ".join(f"{op} {share:.1%}" for op, share in report["action_mix"].items()))
    if report.get("policy_health"):
        parts.append(render_policy_health(report["policy_health"]))
    parts.append(f"faults recovered: {report['faults']}")
    return "\n\n".join(parts)


def _range(pair: tuple[float, float] | None) -> str:
    return "-" if pair is None else f"{pair[0]:.3f}-{pair[1]:.3f}"


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


NO_MATPLOTLIB = "matplotlib is not installed (pip install 'esper-grow[report]') - no plots"


def write_report(
    run: RunDir, *, timeline_envs: int = TIMELINE_ENVS, timeline_rounds: int = TIMELINE_ROUNDS
) -> tuple[dict[str, Any], list[Path], str | None]:
    """Write report/report.json and, when matplotlib is importable, the figures: curves.png,
    lifecycle.png, morphology.png and (learning policies) policy_health.png. Returns (report, plots,
    why-no-plots)."""
    report = build_report(run)
    run.report_dir.mkdir(exist_ok=True)
    write_json_atomic(run.report_dir / "report.json", report)
    plt = pyplot()
    if plt is None:
        return report, [], NO_MATPLOTLIB
    from esper_core.cli.report_data import Spread

    events = read_jsonl(run.events_path)
    title = report["title"]
    spread = {key: Spread(tuple(v["round"]), tuple(v["mean"]), tuple(v["min"]), tuple(v["max"]), v["envs"])
              for key, v in report["spread"].items()}
    plots = [plot_curves(spread, report["rounds"], run.report_dir / "curves.png", plt, title,
                         metric=TaskMetric.from_record(report.get("metric")))]
    spans, lives = lifecycle(events, report["episode_length"])
    timeline = plot_lifecycle(spans, lives, report["slots"], report["episode_length"], run.report_dir / "lifecycle.png",
                              plt, title, max_envs=timeline_envs, max_rounds=timeline_rounds)
    morphology = plot_morphology(final_morphology(events, report["slots"]), report["slots"], report["blueprints"],
                                 run.report_dir / "morphology.png", plt, title)
    plots += [path for path in (timeline, morphology) if path is not None]
    if report.get("policy_health"):
        plots.append(plot_policy_health(report["policy_health"], run.report_dir / "policy_health.png", plt,
                                        title=f"{title}\npolicy health per update (green: healthy range)",
                                        floor=report["entropy_floor"]))
    return report, plots, None


# ---------------------------------------------------------------------------------------- report
@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the report (several runs: the comparison) as JSON.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Several runs: where the comparison goes (default: compare-RUN1-RUN2... beside the first run).")
@click.option("--smooth", type=click.IntRange(min=1), default=1, show_default=True,
              help="Several runs: trailing mean over this many rounds in the comparison plot.")
@click.option("--window", type=click.IntRange(min=1), default=10, show_default=True,
              help="Several runs: rounds in the first/last windows of the comparison table.")
@click.option("--timeline-envs", type=click.IntRange(min=1), default=TIMELINE_ENVS, show_default=True,
              help="Envs drawn on the seed lifecycle timeline.")
@click.option("--timeline-rounds", type=click.IntRange(min=1), default=TIMELINE_ROUNDS, show_default=True,
              help="Newest rounds drawn on the seed lifecycle timeline.")
def report_command(
    run_dirs: tuple[str, ...], as_json: bool, out_dir: Path | None, smooth: int, window: int, timeline_envs: int,
    timeline_rounds: int,
) -> None:
    """Summarise a run from its directory; with several, compare them too.

    Writes RUN/report/ for each run (report.json; with matplotlib: curves, the seed lifecycle timeline,
    the final morphology and policy health as PNGs; pip install 'esper-grow[report]'). With several runs
    also OUT/compare.md, compare.json and compare.png (their curves overlaid). Rounds count from 0.
    """
    try:
        runs = [RunDir.open(path) for path in run_dirs]
        written = [write_report(run, timeline_envs=timeline_envs, timeline_rounds=timeline_rounds) for run in runs]
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    if len(runs) == 1:
        report, plots, why_not = written[0]
        if as_json:
            click.echo(json.dumps(report, indent=2))
            return
        click.echo(render_report(report))
        for plot in plots:
            click.echo(f"plot: {plot}")
        if why_not:
            click.echo(why_not, err=True)
        return
    from esper_core.cli.report_compare import compare_runs, default_out

    target = out_dir if out_dir is not None else default_out(runs)
    try:
        comparison, files = compare_runs([run.root for run in runs], target, window=window, smooth=smooth,
                                         plt=pyplot())
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    if as_json:
        click.echo(json.dumps(comparison, indent=2))
        return
    click.echo(comparison["markdown"])
    for _, plots, _ in written:
        for plot in plots:
            click.echo(f"plot: {plot}")
    for path in files:
        click.echo(f"comparison: {path}")
    if pyplot() is None:
        click.echo(NO_MATPLOTLIB, err=True)
