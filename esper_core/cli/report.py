"""`esper report`: numbers (and, with matplotlib installed, plots) from a run directory's files alone.

Why from files: a report must work for a run that was killed, is still running, or came from another
machine; it never needs the plugins that produced it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from esper_core.run.progress import render_table
from esper_core.cli.report_policy import plot_policy_health, policy_health, render_policy_health
from esper_core.run.rundir import RunDir, write_json_atomic
from esper_core.run.telemetry import read_jsonl


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
        return report, [], "matplotlib is not installed (pip install 'esper[report]') - no plots"
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
