"""Summarise a policy comparison (run directories side by side): a JSON summary, a Markdown table and a plot.

A thin wrapper kept for the study scripts (``gpu_study.sh``): the comparison itself is `esper report RUN
RUN ...` (``esper_core.cli.report_compare``); this writes its results under the names the study write-ups
use (summary.json, table.md, curves.png), with a trailing 5-round mean on the curves by default.

Usage: python benchmarks/study_report.py OUT_DIR RUN_DIR [RUN_DIR ...] [--window N] [--smooth N]
(plot needs matplotlib)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from esper_core.cli.report_compare import markdown, mean_and_error, plot, rolling, summarise

__all__ = ["main", "markdown", "mean_and_error", "plot", "rolling", "summarise"]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--window", type=int, default=10, help="rounds in the first/last windows (default 10)")
    parser.add_argument("--smooth", type=int, default=5, help="trailing mean of the curves in rounds (default 5)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [summarise(p, args.window) for p in args.runs]
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "table.md").write_text(markdown(rows))
    if plot(rows, args.out / "curves.png", args.smooth) is None:
        print("matplotlib not installed: no plot (pip install 'esper-grow[report]')", file=sys.stderr)
    print(markdown(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
