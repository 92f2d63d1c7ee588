"""The figures of `esper report` for one run: the curves (mean over envs with their range), the seed
lifecycle timeline (which blueprint went into which slot, when it blended, fossilized or was pruned) and
the final morphology. Every figure is titled with the run's name and counts rounds in whole numbers
from 0, as events.jsonl and metrics.jsonl do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from esper_core.cli.report_data import SeedLife, Span, Spread
from esper_core.records import ACCURACY, TaskMetric

#: Colour of each stage on the timeline and the morphology (DORMANT draws nothing).
STAGE_COLOURS: Mapping[str, str] = {
    "GERMINATED": "#c7e9c0",
    "TRAINING": "#fdd49e",
    "BLENDING": "#fc8d59",
    "HOLDING": "#6baed6",
    "FOSSILIZED": "#238b45",
    "PRUNED": "#d7301f",
    "EMBARGOED": "#969696",
    "RESETTING": "#d9d9d9",
    "DORMANT": "#ffffff",
}
#: Envs drawn on the timeline and rounds shown (the newest); `esper report --timeline-envs/--timeline-rounds`.
TIMELINE_ENVS = 4
TIMELINE_ROUNDS = 10
#: Envs shown in the morphology grid.
MORPHOLOGY_ENVS = 16
OP_COLOURS: Mapping[str, str] = {
    "WAIT": "#bdbdbd", "GERMINATE": "#74c476", "SET_ALPHA_TARGET": "#fd8d3c", "PRUNE": "#de2d26",
    "FOSSILIZE": "#238b45", "ADVANCE": "#6baed6",
}


def integer_rounds(axis: Any) -> None:
    """Whole-number ticks on the x axis (a round is never fractional)."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _spread(axis: Any, spread: Spread, label: str, colour: str | None = None) -> None:
    line = axis.plot(spread.round, spread.mean, marker="o", markersize=3, color=colour, label=label)[0]
    if spread.envs > 1:
        axis.fill_between(spread.round, spread.low, spread.high, color=line.get_color(), alpha=0.2, linewidth=0)


def plot_curves(
    spreads: Mapping[str, Spread], rounds: Sequence[dict[str, Any]], path: Path, plt: Any, title: str,
    metric: TaskMetric = ACCURACY,
) -> Path:
    """Validation accuracy (the task metric's score, titled by ``metric``), episode return and parameters added (mean, band = min..max over the envs),
    seeds germinated / fossilized / pruned per round, the action mix and throughput."""
    figure, axes = plt.subplots(2, 3, figsize=(15, 7.2))
    flat = axes.ravel()
    envs = next((s.envs for s in spreads.values() if s.envs), 0)
    band = f"mean; band: min-max over {envs} envs" if envs > 1 else "one env"
    for axis, key, label in (
        (flat[0], "final_val_acc", f"final validation {metric.score_label}"),
        (flat[1], "episode_return", "episode return"),
        (flat[2], "params_added", "parameters added (fossilized seeds)"),
    ):
        if key in spreads and spreads[key].round:
            _spread(axis, spreads[key], band)
            axis.legend(fontsize=7, loc="best")
        axis.set_title(label, fontsize=9)
    x = [r["round"] for r in rounds]
    width = 0.27
    for offset, (key, colour) in zip((-width, 0.0, width), (("germinated", "#74c476"), ("fossilized", "#238b45"),
                                                            ("pruned", "#de2d26"))):
        flat[3].bar([r + offset for r in x], [r.get(key, 0) for r in rounds], width, color=colour, label=key)
    flat[3].set_title("seeds per round (all envs)", fontsize=9)
    flat[3].legend(fontsize=7)
    ops = list(dict.fromkeys(op for r in rounds for op in r.get("action_mix", {})))
    if ops:
        stacks = [[r.get("action_mix", {}).get(op, 0.0) for r in rounds] for op in ops]
        flat[4].stackplot(x, stacks, labels=ops, colors=[OP_COLOURS.get(op, "#9e9ac8") for op in ops], alpha=0.85)
        flat[4].set_ylim(0, 1.32)  # the legend sits above the stack
        flat[4].set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        flat[4].legend(fontsize=6, loc="upper left", ncol=3)
    flat[4].set_title("action mix (share of steps)", fontsize=9)
    speed = [r.get("env_steps_per_s") for r in rounds]
    flat[5].plot(x, [float("nan") if v is None else v for v in speed], marker="o", markersize=3, color="black")
    flat[5].set_title("throughput (env steps / s, wall clock)", fontsize=9)
    for axis in flat:
        axis.set_xlabel("round")
        axis.grid(alpha=0.3)
        integer_rounds(axis)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _stage_legend(axis: Any, stages: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=STAGE_COLOURS[s], edgecolor="#555555", linewidth=0.5, label=s) for s in stages]
    axis.legend(handles=handles, fontsize=7, ncol=len(handles), loc="lower left", bbox_to_anchor=(0.0, 1.02),
                frameon=False, handlelength=1.2, columnspacing=1.0)


def plot_lifecycle(
    spans: Sequence[Span], lives: Sequence[SeedLife], slots: Sequence[str], episode_length: int, path: Path, plt: Any,
    title: str, *, max_envs: int = TIMELINE_ENVS, max_rounds: int = TIMELINE_ROUNDS,
) -> Path | None:
    """One panel per env (the first ``max_envs``), one row per slot, epochs of the newest ``max_rounds``
    rounds along x: a bar per stage, each seed labelled with its blueprint and how it ended."""
    envs = sorted({s.env for s in spans} | {life.env for life in lives})[:max_envs]
    last = max([s.end for s in spans] + [life.end for life in lives], default=0)
    if not envs or last == 0:
        return None
    last_round = (last - 1) // episode_length
    first_round = max(0, last_round - max_rounds + 1)
    x0, x1 = first_round * episode_length, (last_round + 1) * episode_length
    rows = list(slots) or sorted({s.slot for s in spans})
    figure, axes = plt.subplots(len(envs), 1, figsize=(14, 0.9 + 0.55 * len(rows) * len(envs) + 0.5 * len(envs)),
                                squeeze=False, sharex=True)
    for axis, env in zip(axes[:, 0], envs):
        for span in spans:
            if span.env != env or span.end <= x0 or span.slot not in rows:
                continue
            y = rows.index(span.slot)
            axis.broken_barh([(max(span.start, x0), span.end - max(span.start, x0))], (y - 0.38, 0.76),
                             facecolors=STAGE_COLOURS.get(span.stage, "#9e9ac8"), edgecolor="#555555", linewidth=0.4)
        for life in lives:
            if life.env != env or life.end <= x0 or life.slot not in rows:
                continue
            start = max(life.start, x0)
            mark = {"FOSSILIZED": " ✓", "PRUNED": " ✗"}.get(life.outcome, "")
            axis.text(start + 0.15, rows.index(life.slot), f"{life.blueprint}{mark}", va="center", ha="left",
                      fontsize=6.5, clip_on=True)
        for boundary in range(first_round, last_round + 2):
            axis.axvline(boundary * episode_length, color="black", linewidth=0.6, alpha=0.5)
        axis.set_yticks(range(len(rows)), rows, fontsize=8)
        axis.set_ylim(len(rows) - 0.5, -0.5)
        axis.set_ylabel(f"env {env}", fontsize=9)
        axis.set_xlim(x0, x1)
    bottom = axes[-1, 0]
    ticks = list(range(first_round, last_round + 1))
    bottom.set_xticks([(r + 0.5) * episode_length for r in ticks], [str(r) for r in ticks])
    bottom.set_xlabel(f"round (one episode of {episode_length} epochs each; ✓ fossilized, ✗ pruned)")
    _stage_legend(axes[0, 0], [s for s in STAGE_COLOURS if s != "DORMANT"])
    all_envs = sorted({s.env for s in spans})
    shown = f"envs {envs[0]}-{envs[-1]} of {len(all_envs)}" if len(envs) > 1 else f"env {envs[0]}"
    figure.suptitle(f"{title}\nseed lifecycle per slot: {shown}, rounds {first_round}-{last_round}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_morphology(
    morphology: Mapping[int, Mapping[str, Any]], slots: Sequence[str], blueprints: Mapping[str, Mapping[str, int]],
    path: Path, plt: Any, title: str, *, max_envs: int = MORPHOLOGY_ENVS,
) -> Path | None:
    """Left: what each env's last episode ended with, slot by slot (stage colour, blueprint name).
    Right: every blueprint's germinations, fossilizations and prunes over the whole run."""
    envs = list(morphology)[:max_envs]
    if not envs:
        return None
    rows = list(slots) or sorted({slot for env in envs for slot in morphology[env]["slots"]})
    height = max(3.4, 1.4 + 0.42 * max(len(envs), len(blueprints)))
    figure, (grid, bars) = plt.subplots(1, 2, figsize=(14, height), gridspec_kw={"width_ratios": [1.3, 1.0]})
    for i, env in enumerate(envs):
        state = morphology[env]
        for j, slot in enumerate(rows):
            stage, blueprint = state["slots"].get(slot, ("DORMANT", None))
            grid.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=STAGE_COLOURS.get(stage, "#9e9ac8"),
                                         edgecolor="#555555", linewidth=0.5))
            text = "empty" if stage == "DORMANT" else f"{blueprint}\n{stage.lower()}" if blueprint else stage.lower()
            grid.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7,
                      color="white" if stage in ("FOSSILIZED", "PRUNED") else "black")
        added = state.get("params_added")
        if added is not None:
            grid.text(len(rows) + 0.08, i + 0.5, f"+{added:,} params", va="center", fontsize=7)
    grid.set_xlim(0, len(rows) + 0.9)
    grid.set_ylim(len(envs), 0)
    grid.set_xticks([j + 0.5 for j in range(len(rows))], rows, fontsize=8)
    grid.set_yticks([i + 0.5 for i in range(len(envs))], [f"env {e} (round {morphology[e]['round']})" for e in envs],
                    fontsize=8)
    grid.tick_params(length=0)
    for side in grid.spines.values():
        side.set_visible(False)
    grid.set_title("final morphology: the last episode's slots", fontsize=9)
    names = list(blueprints)
    if names:
        width = 0.27
        for offset, (key, colour) in zip((-width, 0.0, width), (("germinated", "#74c476"), ("fossilized", "#238b45"),
                                                                ("pruned", "#de2d26"))):
            bars.barh([k + offset for k in range(len(names))], [blueprints[n].get(key, 0) for n in names], width,
                      color=colour, label=key)
        bars.set_yticks(range(len(names)), names, fontsize=8)
        bars.invert_yaxis()
        most = max((blueprints[n].get(key, 0) for n in names for key in ("germinated", "fossilized", "pruned")), default=1)
        bars.set_xlim(0, most * 1.4 + 0.5)  # room on the right for the legend
        bars.legend(fontsize=7, loc="lower right")
        from matplotlib.ticker import MaxNLocator

        bars.xaxis.set_major_locator(MaxNLocator(integer=True))
        bars.grid(alpha=0.3, axis="x")
    bars.set_title("seeds per blueprint over the run (all envs)", fontsize=9)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

