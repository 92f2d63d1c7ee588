"""Summarise a policy comparison (run directories side by side): a JSON table, a Markdown table and a plot.

Reads each run's ``metrics.jsonl`` and the ``episode_end`` events of ``events.jsonl`` (no checkpoints).
Usage: python benchmarks/study_report.py OUT_DIR RUN_DIR [RUN_DIR ...]   (plot needs matplotlib)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

HEADS = ("op", "slot", "blueprint", "style", "tempo", "alpha_target", "alpha_speed", "alpha_curve")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise(run: Path) -> dict[str, Any]:
    episodes = [e for e in _lines(run / "events.jsonl") if e.get("type") == "episode_end"]
    metrics = _lines(run / "metrics.jsonl")
    config = json.loads((run / "config.json").read_text())
    rounds = sorted({e["round"] for e in episodes})
    per_round = [statistics.fmean(e["final_val_acc"] for e in episodes if e["round"] == r) for r in rounds]
    last_k = [e for e in episodes if e["round"] in rounds[-3:]]
    policy = metrics[-1].get("policy", {}) if metrics else {}
    return {
        "run": run.name,
        "policy": config.get("config", config).get("policy", {}).get("name", run.name),
        "rounds": len(rounds),
        "episodes": len(episodes),
        "final_val_acc_per_round": per_round,
        "final_val_acc_last3_rounds": statistics.fmean(e["final_val_acc"] for e in last_k) if last_k else None,
        "params_added_last3_rounds": statistics.fmean(e["params_added"] for e in last_k) if last_k else None,
        "germinated": sum(e["germinated"] for e in episodes),
        "fossilized": sum(e["fossilized"] for e in episodes),
        "pruned": sum(e["pruned"] for e in episodes),
        "faults": sum(e.get("faults", 0) for e in episodes),
        "episode_return_last3_rounds": statistics.fmean(e["episode_return"] for e in last_k) if last_k else None,
        "conditional_entropy_last_update": {
            h: policy[f"entropy_relevant/{h}"] for h in HEADS if f"entropy_relevant/{h}" in policy
        },
        "explained_variance_last_update": policy.get("explained_variance"),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| run | rounds | val acc (last 3 rounds) | params added | germinated | fossilized | pruned | faults |\n"
    head += "|---|---|---|---|---|---|---|---|\n"
    for r in rows:
        head += (
            f"| {r['run']} | {r['rounds']} | {r['final_val_acc_last3_rounds']:.3f} | "
            f"{r['params_added_last3_rounds']:.0f} | {r['germinated']} | {r['fossilized']} | {r['pruned']} | {r['faults']} |\n"
        )
    return head


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install 'esper[report]')", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in rows:
        ax.plot(range(1, r["rounds"] + 1), r["final_val_acc_per_round"], marker="o", label=r["run"])
    ax.set_xlabel("round (one episode per env, then a policy update)")
    ax.set_ylabel("final val acc (mean over envs)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    rows = [summarise(Path(p)) for p in argv[1:]]
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "table.md").write_text(markdown(rows))
    plot(rows, out / "val_acc_per_round.png")
    print(markdown(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
