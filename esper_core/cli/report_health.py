"""The policy-health section of `esper report`: whether a learning policy is still learning.

It reads conventional keys of a policy's update metrics, so any learning policy that returns them is
covered, not just ``ppo_v2``: ``approx_kl`` (joint KL after the update), ``explained_variance``,
``entropy_relevant/<head>`` (normalised entropy over the steps where the head decided) and ``warnings``
(strings ``"kind[...]: message"`` or ``"kind: message"``). A policy that returns none of them has no
policy-health section. What the numbers mean, and the healthy ranges drawn on the plot:
docs/ppo-diagnostics.md (a test keeps ``HEALTHY`` and that page in agreement).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from esper_core.run.progress import render_table

ENTROPY_PREFIX = "entropy_relevant/"
#: Rounds shown in the text table (the newest); plots and report.json keep every round.
TABLE_ROUNDS = 20

#: Healthy ranges from docs/ppo-diagnostics.md, drawn as green bands: (low, high), None = unbounded.
#: Conditional entropy: ppo_v2 warns below its ``entropy_warn`` (default 0.1); a config that changes it
#: moves the band (``entropy_floor``).
HEALTHY: Mapping[str, tuple[float | None, float | None]] = {
    "approx_kl": (1e-3, 3e-2),
    "explained_variance": (0.2, None),
    "entropy_relevant": (0.1, None),
}
#: Below this joint KL the policy did not move (the ``kl_near_zero`` warning).
KL_NEAR_ZERO = 1e-6


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


def entropy_floor(config: Mapping[str, Any]) -> float:
    """The lowest ``policy.options.entropy_warn`` of the run's config, else the documented default."""
    table = config.get("policy", {}).get("options", {}).get("entropy_warn") if isinstance(config, Mapping) else None
    values = [float(v) for v in (table or {}).values() if isinstance(v, (int, float))]
    return min([*values, float(HEALTHY["entropy_relevant"][0] or 0.0)])


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


def _band(axis: Any, low: float | None, high: float | None, label: str) -> None:
    bottom, top = axis.get_ylim()
    axis.axhspan(bottom if low is None else low, top if high is None else high, color="tab:green", alpha=0.12,
                 label=label, zorder=0)
    axis.set_ylim(bottom, top)


def _nan(values: Sequence[float | None], positive: bool = False) -> list[float]:
    return [float("nan") if v is None or (positive and v <= 0) else float(v) for v in values]


def plot_policy_health(
    health: dict[str, Any], path: Path, plt: Any, *, title: str = "", floor: float | None = None
) -> Path:
    """Conditional entropy per head, joint KL (log scale) and explained variance per update, each with its
    healthy range as a green band (docs/ppo-diagnostics.md), and the warnings per update."""
    from esper_core.cli.report_plots import integer_rounds

    figure, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    x = health["round"]
    floor = HEALTHY["entropy_relevant"][0] if floor is None else floor
    for head, values in health["entropy_relevant"].items():
        axes[0].plot(x, _nan(values), marker=".", label=head)
    axes[0].set_ylim(0.0, 1.05)
    _band(axes[0], floor, None, f"healthy (> {floor:g})")
    axes[0].set_title("conditional entropy per head (normalised)", fontsize=9)
    axes[0].legend(fontsize=6, ncol=2, loc="lower left")
    axes[1].plot(x, _nan(health["approx_kl"], positive=True), marker=".", color="black")
    axes[1].set_yscale("log")
    kl = [v for v in _nan(health["approx_kl"], positive=True) if v == v]
    low, high = HEALTHY["approx_kl"]
    axes[1].set_ylim(min([*kl, (low or 1e-3) / 3, KL_NEAR_ZERO]) / 2, max([*kl, (high or 1e-2) * 3]) * 2)
    _band(axes[1], low, high, f"healthy ({low:g}..{high:g})")
    axes[1].axhline(KL_NEAR_ZERO, color="tab:red", linestyle=":", linewidth=1, label="kl_near_zero")
    axes[1].set_title("joint approx KL after the update", fontsize=9)
    axes[1].legend(fontsize=6, loc="upper right")
    ev = _nan(health["explained_variance"])
    axes[2].plot(x, ev, marker=".", color="black")
    finite = [v for v in ev if v == v]
    axes[2].set_ylim(min([*finite, -0.2]) - 0.05, max([*finite, 1.0]) + 0.05)
    ev_low = HEALTHY["explained_variance"][0]
    _band(axes[2], ev_low, None, f"healthy (> {ev_low:g})")
    axes[2].axhline(0.0, color="grey", linewidth=0.8)
    axes[2].set_title("explained variance (value function)", fontsize=9)
    axes[2].legend(fontsize=6, loc="lower right")
    from matplotlib.ticker import MaxNLocator

    axes[3].bar(x, health["warnings_per_round"], color="tab:orange")
    axes[3].set_ylim(0, max([*health["warnings_per_round"], 1]) * 1.15)
    axes[3].yaxis.set_major_locator(MaxNLocator(integer=True))
    if not any(health["warnings_per_round"]):
        axes[3].text(0.5, 0.5, "no warnings", transform=axes[3].transAxes, ha="center", va="center", color="grey")
    axes[3].set_title("policy warnings per update", fontsize=9)
    for axis in axes:
        axis.set_xlabel("round")
        axis.grid(alpha=0.3)
        integer_rounds(axis)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
