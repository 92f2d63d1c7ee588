"""The policy-health part of `esper report`: whether a learning policy is still learning.

It reads conventional keys of a policy's update metrics, so any learning policy that returns them is
covered, not just ``ppo_v2``: ``approx_kl`` (joint KL after the update), ``explained_variance``,
``entropy_relevant/<head>`` (normalised entropy over the steps where the head decided) and ``warnings``
(strings ``"kind[...]: message"`` or ``"kind: message"``). A policy that returns none of them has no
policy-health section. What the numbers mean: docs/ppo-diagnostics.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from esper_core.run.progress import render_table

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
