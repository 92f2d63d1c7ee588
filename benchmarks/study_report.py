"""Summarise a policy comparison (run directories side by side): a JSON summary, a Markdown table and a plot.

Reads each run's ``config.json``, ``metrics.jsonl`` and the ``episode_end`` events of ``events.jsonl`` (no
checkpoints). Episodes are compared per round: every policy's episode trains its host for the same number
of epochs, so rounds are the fair axis even when the runs completed different numbers of them.

Usage: python benchmarks/study_report.py OUT_DIR RUN_DIR [RUN_DIR ...] [--window N]   (plot needs matplotlib)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from esper_core.ops import HEADS



def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
    episodes = [e for e in _lines(run / "events.jsonl") if e.get("type") == "episode_end"]
    metrics = _lines(run / "metrics.jsonl")
    config = json.loads((run / "config.json").read_text())
    config = config.get("config", config)
    rounds = sorted({e["round"] for e in episodes})
    first, last = rounds[:window], rounds[-window:]

    def per_round(key: str) -> list[float]:
        return [statistics.fmean(e[key] for e in episodes if e["round"] == r) for r in rounds]

    policy = metrics[-1].get("policy", {}) if metrics else {}
    updates = [m["policy"] for m in metrics if m.get("policy")]
    return {
        "run": run.name,
        "policy": config.get("policy", {}).get("name", run.name),
        "seed": config.get("run", {}).get("seed"),
        "rounds": len(rounds),
        "episodes": len(episodes),
        "host_params": episodes[0].get("host_params") if episodes else None,
        "per_round": {
            "round": rounds,
            "final_val_acc": per_round("final_val_acc"),
            "episode_return": per_round("episode_return"),
            "params_added": per_round("params_added"),
        },
        "first": {k: _window(episodes, first, k) for k in ("final_val_acc", "episode_return", "params_added")},
        "last": {k: _window(episodes, last, k) for k in ("final_val_acc", "episode_return", "params_added")},
        "germinated": sum(e["germinated"] for e in episodes),
        "fossilized": sum(e["fossilized"] for e in episodes),
        "pruned": sum(e["pruned"] for e in episodes),
        "faults": sum(e.get("faults", 0) for e in episodes),
        "conditional_entropy_last_update": {
            h: policy[f"entropy_relevant/{h}"] for h in HEADS if policy.get(f"entropy_relevant/{h}") is not None
        },
        "explained_variance_last_update": policy.get("explained_variance"),
        "approx_kl_mean": statistics.fmean(u["approx_kl"] for u in updates) if updates else None,
        "policy_updates": len(updates),
    }


def _fmt(window: dict[str, Any], digits: int = 3) -> str:
    if window["mean"] is None:
        return "-"
    error = f" ± {window['stderr']:.{digits}f}" if window["stderr"] is not None else ""
    return f"{window['mean']:.{digits}f}{error}"


def markdown(rows: list[dict[str, Any]]) -> str:
    text = (
        "| run | rounds | val acc, first rounds | val acc, last rounds | params added, last rounds | "
        "return, first -> last | germinated | fossilized | pruned | faults |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for r in rows:
        text += (
            f"| {r['run']} | {r['rounds']} | {_fmt(r['first']['final_val_acc'])} | {_fmt(r['last']['final_val_acc'])} | "
            f"{r['last']['params_added']['mean']:.0f} | {r['first']['episode_return']['mean']:+.2f} -> "
            f"{r['last']['episode_return']['mean']:+.2f} | {r['germinated']} | {r['fossilized']} | {r['pruned']} | "
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
    """Trailing mean over up to ``width`` values (the curve starts at round 1, not at round ``width``)."""
    return [statistics.fmean(values[max(0, i + 1 - width) : i + 1]) for i in range(len(values))]


def plot(rows: list[dict[str, Any]], out: Path, smooth: int = 5) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install 'esper-grow[report]')", file=sys.stderr)
        return
    panels = (("final_val_acc", "final val acc"), ("episode_return", "episode return"), ("params_added", "params added"))
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 3.8))
    for ax, (key, label) in zip(axes, panels):
        for r in rows:
            x = [i + 1 for i in r["per_round"]["round"]]
            ax.plot(x, rolling(r["per_round"][key], smooth), label=r["run"])
        ax.set_xlabel("round (an episode per env, then a policy update)")
        ax.set_ylabel(label)
        ax.set_title(f"{label}: mean over envs, trailing {smooth}-round mean", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--window", type=int, default=10, help="rounds in the first/last windows (default 10)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [summarise(p, args.window) for p in args.runs]
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "table.md").write_text(markdown(rows))
    plot(rows, args.out / "curves.png")
    print(markdown(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
