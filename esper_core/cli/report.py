"""`esper report`: numbers (and, with matplotlib installed, plots) from a run directory's files alone.

Why from files: a report must work for a run that was killed, is still running, or came from another
machine; it never needs the plugins that produced it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

import click

from esper_core.cli.options import USER_ERRORS, as_click_error
from esper_core.run.progress import render_table
from esper_core.run.rundir import RunDir, write_json_atomic
from esper_core.run.telemetry import read_jsonl


# ------------------------------------------------------------------------------------- policy health
# Whether a learning policy is still learning. It reads conventional keys of a policy's update metrics, so
# any learning policy that returns them is covered, not just ``ppo_v2``: ``approx_kl`` (joint KL after the
# update), ``explained_variance``, ``entropy_relevant/<head>`` (normalised entropy over the steps where the
# head decided) and ``warnings`` (strings ``"kind[...]: message"`` or ``"kind: message"``). A policy that
# returns none of them has no policy-health section. What the numbers mean: docs/ppo-diagnostics.md.

ENTROPY_PREFIX = "entropy_relevant/"
#: Rounds shown in the text table (the newest); plots and report.json keep every round.
TABLE_ROUNDS = 20


def warning_kind(warning: str) -> str:
    """``"entropy_low[blueprint]: ..."`` -> ``"entropy_low[blueprint]"``; ``"kl_near_zero: ..."`` -> ``"kl_near_zero"``."""
    return warning.split(":", 1)[0].strip()


def policy_health(rounds: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Per-round series from the ``policy`` dict of each metrics line; None when no round has any of them."""
    learned = [r for r in rounds if any(k == "approx_kl" or k.startswith(ENTROPY_PREFIX) for k in r.get("policy", {}))]
    if not learned:
        return None
    heads = list(dict.fromkeys(k[len(ENTROPY_PREFIX):] for r in learned for k in r["policy"] if k.startswith(ENTROPY_PREFIX)))
    warnings: Counter[str] = Counter(warning_kind(w) for r in learned for w in r["policy"].get("warnings", []))
    return {
        "round": [r["round"] for r in learned],
        "approx_kl": [r["policy"].get("approx_kl") for r in learned],
        "explained_variance": [r["policy"].get("explained_variance") for r in learned],
        "entropy_relevant": {h: [r["policy"].get(ENTROPY_PREFIX + h) for r in learned] for h in heads},
        "warnings_per_round": [len(r["policy"].get("warnings", [])) for r in learned],
        "warning_counts": dict(warnings.most_common()),
    }


def _lowest_entropy(health: dict[str, Any], i: int) -> str:
    values = [(v[i], h) for h, v in health["entropy_relevant"].items() if v[i] is not None]
    if not values:
        return "-"
    value, head = min(values)
    return f"{value:.3f} ({head})"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_policy_health(health: dict[str, Any]) -> str:
    n = len(health["round"])
    shown = range(max(0, n - TABLE_ROUNDS), n)
    rows = [
        [
            health["round"][i],
            _number(health["approx_kl"][i], ".2e"),
            _number(health["explained_variance"][i], ".3f"),
            _lowest_entropy(health, i),
            health["warnings_per_round"][i],
        ]
        for i in shown
    ]
    title = "policy health per update" + (f" (last {TABLE_ROUNDS} of {n})" if n > TABLE_ROUNDS else "")
    text = render_table(["round", "approx KL", "expl. var", "lowest cond. entropy", "warnings"], rows, title)
    if health["warning_counts"]:
        counts = ", ".join(f"{kind} x{count}" for kind, count in health["warning_counts"].items())
        text += f"\n\npolicy warnings over the run: {counts}"
    return text


def plot_policy_health(health: dict[str, Any], path: Path, plt: Any) -> Path:
    """Conditional entropy per head, joint KL (log scale) and explained variance, per update."""
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    x = health["round"]
    for head, values in health["entropy_relevant"].items():
        axes[0].plot(x, [float("nan") if v is None else v for v in values], label=head)
    axes[0].set_ylabel("conditional entropy (normalised)")
    axes[0].set_ylim(0.0, 1.05)
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].plot(x, [float("nan") if v is None or v <= 0 else v for v in health["approx_kl"]])
    axes[1].set_yscale("log")
    axes[1].set_ylabel("joint approx KL after update")
    axes[2].plot(x, [float("nan") if v is None else v for v in health["explained_variance"]])
    axes[2].set_ylabel("explained variance")
    for axis in axes:
        axis.set_xlabel("round")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path



def build_report(run: RunDir) -> dict[str, Any]:
    """Per-round curves, lifecycle counts per blueprint, action mix and the final summary."""
    metrics = read_jsonl(run.metrics_path)
    events = read_jsonl(run.events_path)
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
        "summary": run.read_summary(),
        "rounds": [
            {
                "round": m["round"],
                "mean_final_val_acc": m["env"]["mean_final_val_acc"],
                "mean_return": m["env"]["mean_return"],
                "germinated": m["env"]["germinated"],
                "fossilized": m["env"]["fossilized"],
                "pruned": m["env"]["pruned"],
                "env_steps_per_s": m.get("timing", {}).get("env_steps_per_s"),
                "policy": m.get("policy", {}),
            }
            for m in metrics
        ],
        "action_mix": {op: n / total_ops for op, n in ops.most_common()} if total_ops else {},
        "blueprints": {name: dict(counts) for name, counts in sorted(per_blueprint.items())},
        "faults": faults,
        "policy_health": policy_health(metrics),
    }


def render_report(report: dict[str, Any]) -> str:
    parts = [f"run {report['run']}"]
    summary = report.get("summary") or {}
    if summary:
        parts.append(
            f"status {summary.get('status')} | rounds {summary.get('rounds_completed')}/{summary.get('rounds_planned')} | "
            f"env steps {summary.get('env_steps')} | wall {summary.get('wall_time_s', 0.0):.1f}s | "
            f"task {summary.get('task')} host {summary.get('host')} policy {summary.get('policy')}"
        )
    rows = [
        [r["round"], r["mean_final_val_acc"], r["mean_return"], r["germinated"], r["fossilized"], r["pruned"]]
        for r in report["rounds"]
    ]
    if rows:
        parts.append(render_table(["round", "val acc", "return", "germ", "foss", "prune"], rows, "per round"))
    if report["blueprints"]:
        parts.append(
            render_table(
                ["blueprint", "germinated", "fossilized", "pruned"],
                [[n, c.get("germinated", 0), c.get("fossilized", 0), c.get("pruned", 0)] for n, c in report["blueprints"].items()],
                "per blueprint",
            )
        )
    if report["action_mix"]:
        parts.append("action mix: " + ", ".join(f"{op} {share:.1%}" for op, share in report["action_mix"].items()))
    if report.get("policy_health"):
        parts.append(render_policy_health(report["policy_health"]))
    parts.append(f"faults recovered: {report['faults']}")
    return "\n\n".join(parts)


def write_report(run: RunDir) -> tuple[dict[str, Any], list[Path], str | None]:
    """Write report/report.json (+ PNGs when matplotlib is importable). Returns (report, plots, why-no-plots)."""
    report = build_report(run)
    run.report_dir.mkdir(exist_ok=True)
    write_json_atomic(run.report_dir / "report.json", report)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return report, [], "matplotlib is not installed (pip install 'esper-grow[report]') - no plots"
    plots = []
    rounds = [r["round"] for r in report["rounds"]]
    for key, label in (("mean_final_val_acc", "final validation accuracy"), ("mean_return", "episode return")):
        figure, axis = plt.subplots(figsize=(5, 3))
        axis.plot(rounds, [r[key] for r in report["rounds"]], marker="o")
        axis.set_xlabel("round")
        axis.set_ylabel(label)
        figure.tight_layout()
        path = run.report_dir / f"{key}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        plots.append(path)
    if report.get("policy_health"):
        plots.append(plot_policy_health(report["policy_health"], run.report_dir / "policy_health.png", plt))
    return report, plots, None


# ---------------------------------------------------------------------------------------- report
@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report_command(run_dir: str, as_json: bool) -> None:
    """Summarise a run from its directory (plots too when matplotlib is installed: pip install 'esper-grow[report]')."""
    try:
        report, plots, why_not = write_report(RunDir.open(run_dir))
    except USER_ERRORS as error:
        raise as_click_error(error) from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(render_report(report))
    for plot in plots:
        click.echo(f"plot: {plot}")
    if why_not:
        click.echo(why_not, err=True)
