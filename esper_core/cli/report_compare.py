"""Runs side by side (`esper report RUN RUN ...`, and ``benchmarks/study_report.py``): a JSON summary, a
Markdown table of the first and last rounds (mean and standard error over episodes), and the runs' curves
overlaid (mean over envs, band min..max over envs).

Reads each run's ``config.json``, ``metrics.jsonl`` and the ``episode_end`` events of ``events.jsonl`` (no
checkpoints). Episodes are compared per round: every policy's episode trains its host for the same number
of epochs, so rounds (numbered from 0) are the fair axis even when the runs completed different numbers.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from esper_core.ops import HEADS
from esper_core.records import TaskMetric

#: Values compared per round.
COMPARED: tuple[str, ...] = ("final_val_acc", "episode_return", "params_added")


def _lines(path: Path) -> list[dict[str, Any]]:
    from esper_core.run.telemetry import read_jsonl

    return read_jsonl(path)


def mean_and_error(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and its standard error (None where undefined)."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, statistics.stdev(values) / math.sqrt(len(values))


def _window(episodes: list[dict[str, Any]], rounds: list[int], key: str) -> dict[str, Any]:
    chosen = set(rounds)
    values = [e[key] for e in episodes if e["round"] in chosen]
    mean, error = mean_and_error(values)
    return {"rounds": [min(rounds), max(rounds)] if rounds else None, "episodes": len(values), "mean": mean, "stderr": error}


def summarise(run: Path, window: int = 10) -> dict[str, Any]:
    """One run's row: per-round means and ranges over envs, first/last windows, seed totals, policy health."""
    run = Path(run)
    episodes = [e for e in _lines(run / "events.jsonl") if e.get("type") == "episode_end"]
    metrics = _lines(run / "metrics.jsonl")
    described = json.loads((run / "config.json").read_text())
    config = described.get("config", described)
    rounds = sorted({e["round"] for e in episodes})
    first, last = rounds[:window], rounds[-window:]

    def per_round(key: str, reduce: Any = statistics.fmean) -> list[float]:
        return [reduce([e[key] for e in episodes if e["round"] == r]) for r in rounds]

    policy = metrics[-1].get("policy", {}) if metrics else {}
    updates = [m["policy"] for m in metrics if m.get("policy")]
    series: dict[str, Any] = {"round": rounds}
    for key in COMPARED:
        series[key] = per_round(key)
        series[f"{key}_min"] = per_round(key, min)
        series[f"{key}_max"] = per_round(key, max)
    series["fossilized"] = per_round("fossilized", sum)
    return {
        "run": run.name,
        "metric": TaskMetric.from_record(described.get("metric")).to_dict(),
        "policy": config.get("policy", {}).get("name", run.name),
        "seed": config.get("run", {}).get("seed"),
        "rounds": len(rounds),
        "episodes": len(episodes),
        "envs": len({e["env"] for e in episodes}),
        "host_params": episodes[0].get("host_params") if episodes else None,
        "per_round": series,
        "first": {k: _window(episodes, first, k) for k in COMPARED},
        "last": {k: _window(episodes, last, k) for k in COMPARED},
        "germinated": sum(e["germinated"] for e in episodes),
        "fossilized": sum(e["fossilized"] for e in episodes),
        "pruned": sum(e["pruned"] for e in episodes),
        "faults": sum(e.get("faults", 0) for e in episodes),
        "conditional_entropy_last_update": {
            h: policy[f"entropy_relevant/{h}"] for h in HEADS if policy.get(f"entropy_relevant/{h}") is not None
        },
        "explained_variance_last_update": policy.get("explained_variance"),
        "approx_kl_mean": statistics.fmean(u["approx_kl"] for u in updates if "approx_kl" in u)
        if any("approx_kl" in u for u in updates) else None,
        "policy_updates": len(updates),
    }


def _fmt(window: dict[str, Any], digits: int = 3) -> str:
    if window["mean"] is None:
        return "-"
    error = f" ± {window['stderr']:.{digits}f}" if window["stderr"] is not None else ""
    return f"{window['mean']:.{digits}f}{error}"


def _plain(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def score_names(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(short, long) name of the compared score: the runs' metric when they share one ("acc", "accuracy"
    as before), else just "score" (each task's own score, higher is better)."""
    metrics = {TaskMetric.from_record(r.get("metric")) for r in rows}
    if len(metrics) == 1:
        metric = metrics.pop()
        return metric.score_short, metric.score_label
    return "score", "score (each run's task metric, higher is better)"


def markdown(rows: list[dict[str, Any]]) -> str:
    short = score_names(rows)[0]
    text = (
        f"| run | rounds | val {short}, first rounds | val {short}, last rounds | params added, last rounds | "
        "return, first -> last | germinated | fossilized | pruned | faults |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for r in rows:
        text += (
            f"| {r['run']} | {r['rounds']} | {_fmt(r['first']['final_val_acc'])} | {_fmt(r['last']['final_val_acc'])} | "
            f"{_plain(r['last']['params_added']['mean'], '.0f')} | {_plain(r['first']['episode_return']['mean'], '+.2f')} -> "
            f"{_plain(r['last']['episode_return']['mean'], '+.2f')} | {r['germinated']} | {r['fossilized']} | {r['pruned']} | "
            f"{r['faults']} |\n"
        )
    heads = [h for h in HEADS if any(h in r["conditional_entropy_last_update"] for r in rows)]
    if heads:
        text += "\nConditional normalised entropy per head at the last update (over the steps where the head decided):\n\n"
        text += "| run | " + " | ".join(heads) + " |\n|---|" + "---|" * len(heads) + "\n"
        for r in rows:
            if r["conditional_entropy_last_update"]:
                cells = [f"{r['conditional_entropy_last_update'].get(h, float('nan')):.2f}" for h in heads]
                text += f"| {r['run']} | " + " | ".join(cells) + " |\n"
    return text


def rolling(values: Sequence[float], width: int) -> list[float]:
    """Trailing mean over up to ``width`` values (the curve starts at the first round, not at round ``width``)."""
    return [statistics.fmean(values[max(0, i + 1 - width) : i + 1]) for i in range(len(values))]


def plot(rows: list[dict[str, Any]], out: Path, smooth: int = 5, plt: Any = None) -> Path | None:
    """The runs' curves overlaid: val acc, return and params added (mean over envs, band min..max over
    envs, both as trailing means over ``smooth`` rounds) and seeds fossilized per round."""
    if plt is None:
        from esper_core.cli.report import pyplot

        plt = pyplot()
        if plt is None:
            return None
    from esper_core.cli.report_plots import integer_rounds

    panels = (("final_val_acc", f"final validation {score_names(rows)[1]}"), ("episode_return", "episode return"),
              ("params_added", "parameters added"), ("fossilized", "seeds fossilized (all envs)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(18, 4.2))
    for axis, (key, label) in zip(axes, panels):
        for r in rows:
            series = r["per_round"]
            x = series["round"]
            line = axis.plot(x, rolling(series[key], smooth), marker="o", markersize=2.5, label=r["run"])[0]
            if f"{key}_min" in series and r.get("envs", 1) > 1:
                axis.fill_between(x, rolling(series[f"{key}_min"], smooth), rolling(series[f"{key}_max"], smooth),
                                  color=line.get_color(), alpha=0.15, linewidth=0)
        axis.set_xlabel("round (an episode per env, then a policy update)")
        smoothing = f", trailing {smooth}-round mean" if smooth > 1 else ""
        band = "; band min-max over envs" if key != "fossilized" else ""
        axis.set_title(f"{label}{smoothing}{band}", fontsize=8)
        axis.grid(alpha=0.3)
        integer_rounds(axis)
    from matplotlib.ticker import MaxNLocator

    axes[-1].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=8)
    figure.suptitle(f"comparison of {len(rows)} runs: " + ", ".join(r["run"] for r in rows), fontsize=11)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def default_out(runs: Sequence[Any]) -> Path:
    """``compare-A-B-C`` beside the first run (the name cut to a sane length)."""
    name = "compare-" + "-".join(run.name for run in runs)
    return Path(runs[0].root).parent / name[:120]


def compare_runs(
    paths: Sequence[Path], out: Path, *, window: int = 10, smooth: int = 1, plt: Any = None
) -> tuple[dict[str, Any], list[Path]]:
    """Write OUT/compare.json, compare.md and (with matplotlib) compare.png; returns the comparison and
    the files written."""
    from esper_core.run.rundir import write_json_atomic

    rows = [summarise(Path(p), window) for p in paths]
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows)
    comparison = {"runs": rows, "markdown": text}
    write_json_atomic(out / "compare.json", comparison)
    (out / "compare.md").write_text(text)
    files = [out / "compare.json", out / "compare.md"]
    if plt is not None:
        written = plot(rows, out / "compare.png", smooth, plt)
        if written is not None:
            files.append(written)
    return comparison, files
