"""How often a fused group's morphology changes: the share of epochs in which some env's seed changes stage.

Why: the lever long named for the last factor of fused speed is a CUDA graph of the fused train step,
captured once per morphology (which envs hold which blueprint in which slot, in which stage) and replayed
until it changes. That pays only if a morphology outlives many epochs. This reads what the runs did: for
each run directory's ``events.jsonl``, every epoch (round, step) of the group, whether any env's seed changed
stage during it (any transition), and whether any env germinated (a new member: the group's shapes change).

    python3 benchmarks/morphology_churn.py RUN_DIR [RUN_DIR ...] --out churn.json

Reads only JSON lines; a run directory is untrusted input and nothing in it is executed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from study_runs import read_jsonl


def churn(run_dir: Path, last_share: float = 0.25) -> dict[str, Any]:
    """One run's churn over all its epochs and over the last ``last_share`` of its rounds."""
    events = read_jsonl(run_dir / "events.jsonl", '"type"')
    epochs = {(e["round"], e["step"]) for e in events if e.get("type") == "step"}
    if not epochs:
        raise SystemExit(f"{run_dir / 'events.jsonl'}: no 'step' events; is this an esper run directory?")
    envs = {e["env"] for e in events if e.get("type") == "step"}
    transitions = Counter((e["round"], e["step"]) for e in events if e.get("type") == "seed_transition")
    germinations = {(e["round"], e["step"]) for e in events
                    if e.get("type") == "seed_transition" and e.get("to_stage") == "GERMINATED"}
    rounds = sorted({r for r, _ in epochs})
    late_from = rounds[int(len(rounds) * (1.0 - last_share))] if rounds else 0

    def shares(selected: set[tuple[int, int]]) -> dict[str, float]:
        n = max(1, len(selected))
        return {
            "epochs": len(selected),
            "share_with_a_stage_change": len([k for k in selected if transitions[k]]) / n,
            "share_with_a_germination": len(selected & germinations) / n,
            "stage_changes_per_epoch": sum(transitions[k] for k in selected) / n,
        }

    return {
        "run": run_dir.name, "envs": len(envs), "rounds": len(rounds),
        "all": shares(epochs), "last_quarter": shares({k for k in epochs if k[0] >= late_from}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=None, help="write the numbers here as JSON")
    args = p.parse_args(argv)
    rows = [churn(d) for d in args.run_dirs]
    for r in rows:
        a, q = r["all"], r["last_quarter"]
        print(f"{r['run']}: {r['envs']} envs, {a['epochs']} epochs; a stage change in {a['share_with_a_stage_change']:.0%} "
              f"(last quarter {q['share_with_a_stage_change']:.0%}), a germination in {a['share_with_a_germination']:.0%}, "
              f"{a['stage_changes_per_epoch']:.1f} stage changes per epoch")
    if args.out is not None:
        args.out.write_text(json.dumps({"argv": sys.argv[1:] if argv is None else argv, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
