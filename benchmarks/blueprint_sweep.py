"""Ground truth for the blueprint head: every blueprint in every slot on one fixed schedule.

One ``esper run`` per seed with the ``scripted`` policy: its plan gives env ``i`` one (slot, blueprint) pair,
or ``none`` (the host alone, the control), each pair ``--reps`` times, so one run (one fused group on a GPU)
covers the whole grid. The schedule: germinate at epoch ``--germinate-at``, advance through TRAINING and
BLENDING as soon as the gates allow, fossilize from HOLDING. Then ``esper eval`` on each run: one fresh,
deterministic episode per env on the same schedule, with held-out test accuracy and final parameters.

Writes ``sweep.json`` (every env's numbers and, per (slot, blueprint), mean +- standard error over seeds and
reps of test accuracy, final validation accuracy and parameters, and the gain over ``none``) and
``sweep.md`` (the table, best first). Which blueprints fit which slot comes from the run's own action
space (``--list`` prints the plan it would use). Usage and reading: docs/study.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import attrs
import torch

from study_runs import Planned, esper_command, evaluate, mean_se, run_all


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--runs-dir", type=Path, default=None, help="run directories (default OUT/runs)")
    p.add_argument("--task", default="synthetic")
    p.add_argument("--host", default="resnet_impaired")
    p.add_argument("--preset", default="auto")
    p.add_argument("--episode-length", type=int, default=None)
    p.add_argument("--germinate-at", type=int, default=2, help="epoch at which every env germinates")
    p.add_argument("--reps", type=int, default=1, help="envs per (slot, blueprint) in one run")
    p.add_argument("--seeds", type=int, default=3, help="runs (run seeds)")
    p.add_argument("--pairs", default=None, help="only these SLOT:BLUEPRINT pairs (comma-separated); default: all that fit")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="for every run")
    p.add_argument("--max-parallel", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=None)
    p.add_argument("--esper", default=None, help="the esper command (default: this python -m esper_core.cli)")
    p.add_argument("--list", action="store_true", help="print the plan and exit")
    p.add_argument("--summarise-only", action="store_true",
                   help="run nothing: recompute the summary and table from the per-env rows of OUT/sweep.json")
    return p.parse_args(argv)


def _sets(pairs: list[str]) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def fitting_pairs(args: argparse.Namespace) -> list[str]:
    """Every SLOT:BLUEPRINT the run's action space allows (slot topology and the enabled blueprints), read
    from the same configuration the runs get, on the CPU, without building an env."""
    from esper_core.cli.options import overrides_from_cli
    from esper_core.config import load_config
    from esper_core.plugins import load_registry, preset_adjustments_of
    from esper_core.rl.actions import ActionSpace
    from esper_core.run.setup import resolve_basis, slot_layout, structure

    flags = {"task": args.task, "host": args.host, "episode_length": args.episode_length}
    registry = load_registry()
    config = load_config(
        overrides=overrides_from_cli(flags, args.sets), preset=args.preset, preset_adjustments=preset_adjustments_of(registry)
    )
    config = attrs.evolve(config, device=attrs.evolve(config.device, device="cpu", devices=()))
    basis = resolve_basis(config, registry)
    info = basis.task.task.load(Path(basis.config.task.data_dir).expanduser(), torch.device("cpu"), 0).info
    host_spec = registry.get("host", config.host.name)
    slots, topology = slot_layout(host_spec, structure(host_spec, config.host.options, "host.options"), info)
    space = ActionSpace.from_registry(registry, topology, slots, config.actions)
    support = space.blueprint_support()
    return [
        f"{slot}:{blueprint}"
        for s, slot in enumerate(space.slots)
        for b, blueprint in enumerate(space.blueprints)
        if blueprint != "noop" and bool(support[s, b])
    ]


def plan(args: argparse.Namespace, pairs: list[str]) -> list[Planned]:
    entries = ["none", *pairs]
    envs = [entry for entry in entries for _ in range(args.reps)]
    common = ["--task", args.task, "--host", args.host, "--preset", args.preset, "--policy", "scripted",
              "--envs", str(len(envs)), "--set", f"policy.options.plan={json.dumps(envs)}",
              "--set", f"policy.options.germinate_at={args.germinate_at}"]
    if args.episode_length is not None:
        common += ["--episode-length", str(args.episode_length)]
    common += _sets(args.sets)
    return [Planned(f"sweep-s{s}", tuple(common + ["--seed", str(s)]), 1) for s in range(args.seeds)]


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per plan entry: test / final validation accuracy and parameters over seeds and reps, best first, with
    the gain in test accuracy over ``none`` (each run's own control)."""
    by_entry: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_entry.setdefault(row["plan"], []).append(row)
    # Each run's control is the mean of its ``none`` envs: with --reps above 1 there are several, and keeping
    # only one of them (as a dict of seed -> row would) measured every gain against a single draw.
    controls: dict[int, list[float]] = {}
    for r in by_entry.get("none", []):
        controls.setdefault(r["seed"], []).append(r["test_acc"])
    control = {seed: sum(accs) / len(accs) for seed, accs in controls.items()}
    out = []
    for entry, members in by_entry.items():
        gains = [m["test_acc"] - control[m["seed"]] for m in members if m["seed"] in control]
        out.append({
            "plan": entry,
            "test_acc": mean_se([m["test_acc"] for m in members]),
            "final_val_acc": mean_se([m["final_val_acc"] for m in members]),
            "host_params": mean_se([m["host_params"] for m in members]),
            "test_gain_over_none": mean_se(gains),
        })
    return sorted(out, key=lambda r: -(r["test_acc"]["mean"] or 0.0))


def markdown(summary: list[dict[str, Any]]) -> str:
    def cell(stat: dict[str, Any], digits: int) -> str:
        if stat["mean"] is None:
            return "-"
        return f"{stat['mean']:.{digits}f}" + ("" if stat["se"] is None else f" ± {stat['se']:.{digits}f}")

    lines = ["| slot:blueprint | test acc | gain over none (test) | final val acc | final params | n |", "|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(
            f"| {r['plan']} | {cell(r['test_acc'], 4)} | {cell(r['test_gain_over_none'], 4)} | "
            f"{cell(r['final_val_acc'], 4)} | {cell(r['host_params'], 0)} | {r['test_acc']['n']} |"
        )
    return "\n".join(lines) + "\n"


def resummarise(out: Path) -> int:
    """Rewrite OUT/sweep.json's summary and OUT/sweep.md from its per-env rows (e.g. after a fix to the
    summary, without running the sweep again)."""
    path = out / "sweep.json"
    try:
        document = json.loads(path.read_text())
        rows = document["envs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: expected a sweep.json written by this script, with its per-env rows under 'envs' ({exc})")
    write_sweep(out, {**document, "summary": summarise(rows)})
    return 0


def write_sweep(out: Path, document: dict[str, Any]) -> None:
    """OUT/sweep.json (the whole document) and OUT/sweep.md (its summary's table), which is also printed."""
    (out / "sweep.json").write_text(json.dumps(document, indent=1))
    (out / "sweep.md").write_text(markdown(document["summary"]))
    print(markdown(document["summary"]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarise_only:  # before the plan: it needs neither the registry nor the pairs
        return resummarise(args.out)
    esper = esper_command(args.esper)
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()] if args.pairs else fitting_pairs(args)
    runs = plan(args, pairs)
    if args.list:
        print(f"{len(pairs)} pair(s) + none, x {args.reps} rep(s) = {(len(pairs) + 1) * args.reps} envs per run, "
              f"{args.seeds} run(s):\n  " + "\n  ".join(["none", *pairs]))
        return 0
    out: Path = args.out
    runs_dir = args.runs_dir or out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    status = run_all(runs, runs_dir, out / "logs", esper, args.max_parallel, args.budget_s)
    rows: list[dict[str, Any]] = []
    entries = ["none", *pairs]
    for seed, run in enumerate(runs):
        result = evaluate(runs_dir / run.name, esper, out / "logs" / f"{run.name}.eval.log") if status[run.name] == "finished" else None
        for row in (result or {}).get("envs", []):
            rows.append({
                "seed": seed, "env": row["env"], "plan": entries[row["env"] // args.reps],
                "test_acc": row["test_acc"], "final_val_acc": row["final_val_acc"], "host_params": row["host_params"],
                "params_added": row["params_added"], "fossilized": row["fossilized"],
            })
    summary = summarise(rows)
    complete = all(s == "finished" for s in status.values()) and len(rows) == len(runs) * len(entries) * args.reps
    write_sweep(out, {
        "argv": sys.argv[1:] if argv is None else argv, "status": status, "complete": complete,
        "germinate_at": args.germinate_at, "pairs": pairs, "summary": summary, "envs": rows,
    })
    print(f"written: {out / 'sweep.json'}, {out / 'sweep.md'}")
    return 0 if complete else 3


if __name__ == "__main__":
    raise SystemExit(main())
