"""Issue 15's study: does ppo_v2 grow networks better than not growing them?

Arms (each a family of runs, all on one task and host, run as concurrent ``esper`` subprocesses):
- ``ppo_v2``: ``--seeds`` seeds, ``--rounds`` rounds each (with the gpu preset's 32 envs, 32 rounds = 1,024
  episodes); ``--variant NAME:KEY=VALUE,...`` adds another ppo_v2 family with those settings (a lever);
- ``heuristic``, ``random``, ``static``: ``--baseline-seeds`` seeds, ``--baseline-rounds`` rounds each;
- ``width``: the static host at each of ``--widths`` (the frontier a grown network must sit above).
Every arm uses the same reward (``--reward``), so returns are comparable. Then ``esper eval`` on every run
(held-out test accuracy per env, one deterministic episode) and ``study.json``:
- per family: test accuracy, final validation accuracy and final parameters, mean +- standard error over
  every (seed, env) of the evaluation; per-seed means too;
- per family: the Pearson correlation between episode return and the episode's final *validation*
  accuracy over its training episodes (test accuracy is only measured at evaluation), and pooled over all
  families (returns are comparable: one reward);
- per family that grows: each seed's margin over the *parameter-matched* static host (the static hosts'
  test accuracy at that seed's network size, linear in log parameters between the two nearest; the issue's
  bar is every seed above it) and what its evaluated networks held (``slot:blueprint:stage`` counts);
- with ``--sweep``, per family that grows: the blueprint sweep's mean gain of the ``slot:blueprint`` pairs its
  evaluated networks hold, against the mean over all pairs the sweep measured, and their share among the
  sweep's top 3 (does it grow what the sweep rates best?);
- per learning family: explained variance (stored values) over the last quarter of updates, and the
  blueprint head's conditional entropy (``entropy_relevant/blueprint``) at the last update and over the
  last quarter;
- plots (when matplotlib is there): ``curves.png`` (final validation accuracy and return per round) and
  ``frontier.png`` (test accuracy against final parameters, the width sweep drawn as a line).

Budget and resume: ``--budget-s`` stops every run with SIGINT at that wall time (each writes a
checkpoint); calling the same command again continues the unfinished runs, then evaluates. Summaries are
written after every call, from whatever is done. Usage and how to read the outputs: docs/study.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from study_runs import (
    Planned,
    esper_command,
    evaluate,
    mean_se,
    pearson,
    pyplot,
    read_jsonl,
    run_all,
    summary,
)

FAMILIES = ("ppo_v2", "heuristic", "random", "static", "width")
DEFAULT_WIDTHS = "6,12,24;8,16,32;10,20,40;12,24,48;16,32,64"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="where study.json, the plots and the logs go")
    p.add_argument("--runs-dir", type=Path, default=None, help="run directories (default OUT/runs)")
    p.add_argument("--arms", default=",".join(FAMILIES), help=f"families to run, comma-separated, of {FAMILIES}")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="another ppo_v2 family with these --set overrides (repeatable), e.g. vnorm:policy.options.value_norm=true")
    p.add_argument("--seeds", type=int, default=3, help="seeds per ppo_v2 family")
    p.add_argument("--baseline-seeds", type=int, default=1, help="seeds per baseline and width arm")
    p.add_argument("--rounds", type=int, default=32, help="rounds per ppo_v2 run (episodes = rounds x envs)")
    p.add_argument("--baseline-rounds", type=int, default=4, help="rounds per baseline / width run (they do not learn)")
    p.add_argument("--widths", default=DEFAULT_WIDTHS, help="static width sweep: width lists separated by ';'")
    p.add_argument("--task", default="synthetic")
    p.add_argument("--host", default="resnet_impaired")
    p.add_argument("--reward", default="growth", help="reward of every arm")
    p.add_argument("--preset", default="auto")
    p.add_argument("--envs", type=int, default=None, help="envs per run (default: the preset's)")
    p.add_argument("--episode-length", type=int, default=None)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="for every run")
    p.add_argument("--ppo-set", action="append", default=[], metavar="KEY=VALUE", help="for every ppo_v2 run")
    p.add_argument("--max-parallel", type=int, default=4, help="runs at once")
    p.add_argument("--budget-s", type=float, default=None, help="wall-clock budget for the runs of this call")
    p.add_argument("--sweep", type=Path, default=None,
                   help="a blueprint sweep's sweep.json (benchmarks/blueprint_sweep.py): rate what each family grew "
                        "by the sweep's gain of each slot:blueprint pair")
    p.add_argument("--esper", default=None, help="the esper command (default: this python -m esper_core.cli)")
    p.add_argument("--no-eval", action="store_true", help="skip esper eval (summaries without test accuracy)")
    p.add_argument("--summarise-only", action="store_true",
                   help="run and evaluate nothing: summarise the run directories as they are (their latest eval.json), "
                        "e.g. runs copied back from a GPU machine without their checkpoints")
    return p.parse_args(argv)


def _sets(pairs: list[str]) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def plan(args: argparse.Namespace) -> dict[str, list[Planned]]:
    """Family -> its runs. Names are stable, so a second call finds the same run directories."""
    common = ["--task", args.task, "--host", args.host, "--reward", args.reward, "--preset", args.preset]
    if args.envs is not None:
        common += ["--envs", str(args.envs)]
    if args.episode_length is not None:
        common += ["--episode-length", str(args.episode_length)]
    common += _sets(args.sets)
    chosen = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in chosen if a not in FAMILIES]
    if unknown:
        raise SystemExit(f"--arms: unknown arm(s) {unknown}; choose from {list(FAMILIES)}")
    families: dict[str, list[Planned]] = {}
    ppo = common + ["--policy", "ppo_v2"] + _sets(args.ppo_set)
    if "ppo_v2" in chosen:
        families["ppo_v2"] = [Planned(f"ppo_v2-s{s}", tuple(ppo + ["--seed", str(s)]), args.rounds) for s in range(args.seeds)]
    for text in args.variant:
        name, sep, pairs = text.partition(":")
        if not sep or not name or name in FAMILIES:
            raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE] with a NAME not in {list(FAMILIES)}")
        extra = _sets([p for p in pairs.split(",") if p])
        families[name] = [Planned(f"{name}-s{s}", tuple(ppo + extra + ["--seed", str(s)]), args.rounds) for s in range(args.seeds)]
    for policy in ("heuristic", "random", "static"):
        if policy in chosen:
            families[policy] = [
                Planned(f"{policy}-s{s}", tuple(common + ["--policy", policy, "--seed", str(s)]), args.baseline_rounds)
                for s in range(args.baseline_seeds)
            ]
    if "width" in chosen:
        for widths in [w.strip() for w in args.widths.split(";") if w.strip()]:
            label = "width-" + widths.replace(",", "-")
            families[label] = [
                Planned(f"{label}-s{s}", tuple(common + ["--policy", "static", "--seed", str(s), "--set",
                                                          f"host.options.widths=[{widths}]"]), args.baseline_rounds)
                for s in range(args.baseline_seeds)
            ]
    return families


def run_record(run_dir: Path, result: dict[str, Any] | None) -> dict[str, Any]:
    """One run's numbers: evaluation per env, its episodes (return, final val acc) and its policy health."""
    info = summary(run_dir) or {}
    episodes = [e for e in read_jsonl(run_dir / "events.jsonl", '"episode_end"') if e.get("type") == "episode_end"]
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    updates = [m["policy"] for m in metrics if m.get("policy")]
    quarter = updates[len(updates) - max(1, len(updates) // 4):] if updates else []

    def values(key: str, rows: list[dict[str, Any]]) -> list[float]:
        return [float(r[key]) for r in rows if r.get(key) is not None]

    return {
        "rounds_completed": info.get("rounds_completed", 0),
        "status": info.get("status"),
        "eval": None if result is None else [
            {**{k: row.get(k) for k in ("env", "test_acc", "final_val_acc", "host_params", "params_added")},
             "network_params": network_params(row), "grown": grown(row)} for row in result["envs"]
        ],
        "eval_round": None if result is None else result.get("round"),
        "episodes": [(e["round"], e["episode_return"], e["final_val_acc"], e["host_params"]) for e in episodes],
        "explained_variance_last_quarter": mean_se(values("explained_variance", quarter))["mean"],
        "blueprint_entropy_last": (values("entropy_relevant/blueprint", updates[-1:]) or [None])[0],
        "blueprint_entropy_last_quarter": mean_se(values("entropy_relevant/blueprint", quarter))["mean"],
        "updates": len(updates),
        "curve": [(m["round"], m["env"]["mean_final_val_acc"], m["env"]["mean_return"]) for m in metrics if "env" in m],
    }


def network_params(row: dict[str, Any]) -> int:
    """Parameters of the network the evaluation scored: the host with its fossils (``host_params``) plus every
    live seed that is blended in (``in_network``; a seed still isolated in TRAINING does not reach the
    output). Why not ``host_params`` alone: a policy that ends its episodes with seeds blending or holding
    is scored with them, so comparing it to a static host of ``host_params`` would flatter it."""
    live = sum(s["seed_params"] for s in row.get("slots", []) if s.get("in_network") and s.get("stage") != "FOSSILIZED")
    return int(row["host_params"]) + int(live)


def grown(row: dict[str, Any]) -> list[str]:
    """``slot:blueprint:stage`` of every seed the evaluated network holds at the end (a TRAINING seed included:
    it is there, though it does not reach the output; a PRUNED one is gone)."""
    return [
        f"{s['slot']}:{s['blueprint']}:{s['stage']}"
        for s in row.get("slots", []) if s.get("blueprint") and s.get("stage") != "PRUNED"
    ]


def is_static_host(family: str) -> bool:
    """A family that trains a fixed network (the width sweep and the ``static`` arm): the frontier a grown
    network is judged against, and never judged itself."""
    return family.startswith("width-") or family == "static"


def frontier_points(families: dict[str, Any]) -> list[tuple[float, float]]:
    """(parameters, mean test accuracy) of every static host the study trained: the width sweep and the
    ``static`` arm (the base widths), sorted by size."""
    return sorted(
        (f["final_params"]["mean"], f["test_acc"]["mean"])
        for name, f in families.items()
        if is_static_host(name) and f["test_acc"]["mean"] is not None
    )


def frontier_at(points: list[tuple[float, float]], params: float) -> float | None:
    """The static hosts' test accuracy at ``params``, linear in log(parameters) between the two nearest
    sizes (the sweep's widths grow geometrically); None outside the sweep, where it would be a guess."""
    for (p0, a0), (p1, a1) in zip(points, points[1:]):
        if p0 <= params <= p1:
            span = math.log(p1) - math.log(p0)
            if span > 0.0:
                t = (math.log(params) - math.log(p0)) / span
            else:  # sizes too close for their logs to differ: linear in the sizes themselves
                t = 0.0 if p1 == p0 else (params - p0) / (p1 - p0)
            return a0 + t * (a1 - a0)
    return None


def against_frontier(runs: dict[str, dict[str, Any]], points: list[tuple[float, float]]) -> dict[str, Any]:
    """Issue 15's bar, per seed: the run's mean test accuracy and network size, the parameter-matched static
    accuracy (``frontier_at``) and the margin over it; and what the evaluated networks held."""
    per_seed: dict[str, Any] = {}
    for name, record in runs.items():
        rows = record["eval"] or []
        if not rows:
            continue
        acc = mean_se([r["test_acc"] for r in rows])["mean"]
        params = mean_se([r["network_params"] for r in rows])["mean"]
        matched = frontier_at(points, params)
        per_seed[name] = {
            "test_acc": acc,
            "network_params": params,
            "parameter_matched_static_acc": matched,
            "margin_over_matched": None if matched is None else acc - matched,
            "grown": dict(Counter(g for r in rows for g in r.get("grown", [])).most_common()),
        }
    margins = [s["margin_over_matched"] for s in per_seed.values()]
    return {
        "per_seed": per_seed,
        "min_margin_over_matched": min(margins) if margins and None not in margins else None,
    }


def sweep_ratings(path: Path) -> dict[str, float]:
    """``slot:blueprint`` -> the sweep's mean test-accuracy gain over its no-growth env, from ``sweep.json``."""
    try:
        summary_rows = json.loads(path.read_text())["summary"]
        return {row["plan"]: float(row["test_gain_over_none"]["mean"]) for row in summary_rows if row["plan"] != "none"}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"--sweep {path}: not a blueprint sweep's sweep.json ({error})") from error


def against_sweep(runs: dict[str, dict[str, Any]], ratings: dict[str, float], top: int = 3) -> dict[str, Any]:
    """Does a family grow what the sweep rates best? Over every seed it holds at the end of its evaluation
    episodes (``grown``): the mean sweep gain of those ``slot:blueprint`` pairs, against the mean over every
    pair the sweep measured (what choosing at random would average), and the share among the sweep's ``top``
    pairs. Pairs the sweep did not measure are counted in ``unrated``."""
    chosen: list[str] = []
    for record in runs.values():
        for row in record["eval"] or []:
            chosen += [":".join(g.split(":")[:2]) for g in row.get("grown", [])]
    rated = [ratings[pair] for pair in chosen if pair in ratings]
    best = set(sorted(ratings, key=lambda pair: -ratings[pair])[:top])
    return {
        "seeds_held": len(chosen),
        "unrated": len(chosen) - len(rated),
        "mean_sweep_gain_of_chosen": mean_se(rated)["mean"] if rated else None,
        "mean_sweep_gain_of_all_pairs": mean_se(list(ratings.values()))["mean"] if ratings else None,
        f"share_in_sweep_top{top}": (sum(pair in best for pair in chosen) / len(chosen)) if chosen else None,
        "sweep_top": sorted(best, key=lambda pair: -ratings[pair]),
    }


def family_summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = [row for r in runs.values() for row in (r["eval"] or [])]
    episodes = [e for r in runs.values() for e in r["episodes"]]

    def health(key: str) -> dict[str, Any]:
        return mean_se([r[key] for r in runs.values() if r[key] is not None])

    return {
        "runs": sorted(runs),
        "test_acc": mean_se([r["test_acc"] for r in rows]),
        "final_val_acc_eval": mean_se([r["final_val_acc"] for r in rows]),
        "final_params": mean_se([r.get("network_params", r["host_params"]) for r in rows]),
        "host_params": mean_se([r["host_params"] for r in rows]),
        "params_added": mean_se([r["params_added"] for r in rows]),
        "test_acc_per_seed": {name: mean_se([row["test_acc"] for row in (r["eval"] or [])])["mean"] for name, r in runs.items()},
        "episodes": len(episodes),
        "return_vs_final_val_acc": pearson([e[1] for e in episodes], [e[2] for e in episodes]),
        "explained_variance_last_quarter": health("explained_variance_last_quarter"),
        "blueprint_entropy_last": health("blueprint_entropy_last"),
        "blueprint_entropy_last_quarter": health("blueprint_entropy_last_quarter"),
    }


def _fmt(stat: dict[str, Any], digits: int = 4) -> str:
    if stat["mean"] is None:
        return "-"
    se = "" if stat["se"] is None else f" ± {stat['se']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}{se}"


def table(families: dict[str, Any]) -> str:
    lines = [
        "| arm | test acc | final params | params added | worst seed over matched static | return~val acc r "
        "| EV last 1/4 | blueprint H last |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in families.items():
        r = f["return_vs_final_val_acc"]
        worst = (f.get("against_frontier") or {}).get("min_margin_over_matched")
        lines.append(
            f"| {name} | {_fmt(f['test_acc'])} | {_fmt(f['final_params'], 0)} | {_fmt(f['params_added'], 0)} | "
            f"{'-' if worst is None else f'{worst:+.4f}'} | "
            f"{'-' if r is None else f'{r:.2f}'} | {_fmt(f['explained_variance_last_quarter'], 3)} | "
            f"{_fmt(f['blueprint_entropy_last'], 3)} |"
        )
    return "\n".join(lines) + "\n"


def plots(out: Path, runs: dict[str, dict[str, dict[str, Any]]], families: dict[str, Any]) -> list[str]:
    plt = pyplot()
    if plt is None:
        return []
    written = []
    fig, (acc_ax, ret_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for family, members in runs.items():
        for i, (name, record) in enumerate(sorted(members.items())):
            curve = record["curve"]
            if not curve:
                continue
            xs = [c[0] for c in curve]
            kwargs = {"label": family if i == 0 else None, "color": f"C{list(runs).index(family) % 10}", "alpha": 0.8}
            acc_ax.plot(xs, [c[1] for c in curve], **kwargs)
            ret_ax.plot(xs, [c[2] for c in curve], **kwargs)
    acc_ax.set(xlabel="round", ylabel="mean final validation accuracy", title="learning curves")
    ret_ax.set(xlabel="round", ylabel="mean episode return", title="return")
    acc_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)
    written.append("curves.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    frontier = sorted(
        (f["final_params"]["mean"], f["test_acc"]["mean"], f["test_acc"]["se"] or 0.0)
        for name, f in families.items()
        if is_static_host(name) and f["test_acc"]["mean"] is not None
    )
    if frontier:
        ax.errorbar([p for p, _, _ in frontier], [a for _, a, _ in frontier], yerr=[s for _, _, s in frontier],
                    color="black", marker="s", label="static hosts (width sweep and static)")
    for i, (name, f) in enumerate(families.items()):
        if is_static_host(name) or f["test_acc"]["mean"] is None:
            continue
        ax.errorbar([f["final_params"]["mean"]], [f["test_acc"]["mean"]], yerr=[f["test_acc"]["se"] or 0.0],
                    xerr=[f["final_params"]["se"] or 0.0], marker="o", linestyle="none", label=name, color=f"C{i % 10}")
    ax.set(xlabel="final parameters", ylabel="held-out test accuracy", title="test accuracy vs size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "frontier.png", dpi=120)
    plt.close(fig)
    written.append("frontier.png")
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ratings = sweep_ratings(args.sweep) if args.sweep is not None else None  # a bad file fails before the runs
    out: Path = args.out
    runs_dir = args.runs_dir or out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    esper = esper_command(args.esper)
    families = plan(args)
    planned = [run for members in families.values() for run in members]
    started = time.monotonic()
    if args.summarise_only:
        status = {run.name: str((summary(runs_dir / run.name) or {}).get("status", "missing")) for run in planned}
    else:
        status = run_all(planned, runs_dir, out / "logs", esper, args.max_parallel, args.budget_s)
    for name, state in status.items():
        print(f"{name}: {state}")
    records: dict[str, dict[str, dict[str, Any]]] = {}
    for family, members in families.items():
        records[family] = {}
        for run in members:
            if args.summarise_only:
                saved = runs_dir / run.name / "eval.json"
                result = json.loads(saved.read_text()) if saved.is_file() else None
            else:
                result = None if args.no_eval else evaluate(runs_dir / run.name, esper, out / "logs" / f"{run.name}.eval.log")
            records[family][run.name] = run_record(runs_dir / run.name, result)
    summaries = {family: family_summary(members) for family, members in records.items()}
    points = frontier_points(summaries)
    for family, members in records.items():
        if not is_static_host(family):
            summaries[family]["against_frontier"] = against_frontier(members, points)
            if ratings is not None:
                summaries[family]["against_sweep"] = against_sweep(members, ratings)
    pooled = [e for members in records.values() for r in members.values() for e in r["episodes"]]
    study = {
        "argv": sys.argv[1:] if argv is None else argv,
        "status": status,
        "complete": all(s == "finished" for s in status.values()),
        "wall_s_this_call": time.monotonic() - started,
        "accuracy_for_correlation": "final validation accuracy of each training episode (test accuracy exists only "
                                    "for the evaluation episode)",
        "return_vs_final_val_acc_pooled": pearson([e[1] for e in pooled], [e[2] for e in pooled]),
        "families": summaries,
        "runs": records,
    }
    study["plots"] = plots(out, records, summaries)
    (out / "study.json").write_text(json.dumps(study, indent=1))
    (out / "table.md").write_text(table(summaries))
    print(table(summaries))
    print(f"written: {out / 'study.json'}, {out / 'table.md'}" + "".join(f", {out / p}" for p in study["plots"]))
    return 0 if study["complete"] else 3


if __name__ == "__main__":
    raise SystemExit(main())
