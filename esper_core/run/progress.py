"""Live progress for `esper run`: one rewritten status line on a terminal, plain lines otherwise.

Why two modes: a terminal wants to see every step move; a log file (CI, nohup, a pipe) wants one line
per round that still reads well when grepped. Every line fits ``MAX_WIDTH`` columns (and a narrower
terminal): the least useful parts are dropped first, so a line never wraps and a rewritten status line
never leaves debris. Rounds are numbered from 0, as in events.jsonl, metrics.jsonl, the report and the
checkpoint names (``round_00003.pt`` is where round 3 starts); ``3/5 rounds`` is a count of rounds done.
No third-party dependency.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, Callable, Mapping, Sequence, TextIO

from esper_core.records import ACCURACY, TaskMetric

#: No progress line is wider than this, whatever the terminal.
MAX_WIDTH = 120

#: Op names as the progress lines spell them (the full names are in events.jsonl and the report).
SHORT_OPS: Mapping[str, str] = {
    "WAIT": "WAIT", "GERMINATE": "GERM", "SET_ALPHA_TARGET": "ALPHA", "PRUNE": "PRUNE", "FOSSILIZE": "FOSS",
    "ADVANCE": "ADV",
}


def format_mix(mix: Mapping[str, float], short: bool = False) -> str:
    """``{"WAIT": 0.8, "GERMINATE": 0.1}`` -> ``WAIT 80% GERMINATE 10%`` (largest first, zeros skipped);
    ``short`` spells the ops as ``SHORT_OPS`` does."""
    parts = [
        f"{SHORT_OPS.get(op, op) if short else op} {share:.0%}"
        for op, share in sorted(mix.items(), key=lambda kv: -kv[1]) if share > 0
    ]
    return " ".join(parts) or "-"


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: short enough for a status line, exact enough to plan by."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fit(parts: Sequence[tuple[str, int]], width: int, separator: str = " | ") -> str:
    """Join ``(text, priority)`` parts in their order, dropping the lowest priority ones (the last of equal
    priority first) until the line fits ``width``; a line still too long is cut with ``…``."""
    kept = [(i, text, priority) for i, (text, priority) in enumerate(parts) if text]
    line = separator.join(text for _, text, _ in kept)
    while len(line) > width and len(kept) > 1:
        lowest = min(kept, key=lambda item: (item[2], -item[0]))
        kept.remove(lowest)
        line = separator.join(text for _, text, _ in kept)
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


class Progress:
    """Prints progress to ``stream``; ``live`` (default: whether it is a terminal) rewrites one line.

    ``begin`` starts the clock of a session (the rounds ``first_round`` up to ``end_round``, exclusive);
    from then on every line carries the elapsed time and an ETA from the env steps done so far.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        live: bool | None = None,
        quiet: bool = False,
        width: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) if live is None else live
        self.quiet = quiet
        self._width = width
        self._clock = clock
        self._line_open = False
        self._plan: tuple[float, int, int, int] | None = None  # (start time, first round, end round, steps)
        #: The task's metric (the runner sets it): accuracy lines read ``acc 0.512``, others e.g. ``bpb 3.104``.
        self.metric: TaskMetric = ACCURACY

    # ---------------------------------------------------------------------------------- layout
    @property
    def width(self) -> int:
        """Columns a line may use: ``MAX_WIDTH``, or less on a narrower terminal (one column spare, so a
        rewritten line never triggers the terminal's automatic wrap)."""
        if self._width is not None:
            return self._width
        if self.live:
            return min(MAX_WIDTH, shutil.get_terminal_size((MAX_WIDTH + 1, 24)).columns - 1)
        return MAX_WIDTH

    def _write_line(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    # ---------------------------------------------------------------------------------- timing
    def begin(self, first_round: int, end_round: int, steps_per_round: int) -> None:
        """A session plays rounds ``first_round`` .. ``end_round - 1`` of ``steps_per_round`` steps each."""
        self._plan = (self._clock(), first_round, end_round, steps_per_round)

    def timing(self, round_index: int, steps_done: int) -> str:
        """``2/5 rounds, 1m10s elapsed, ETA 1m45s`` (rounds done of the session's) after ``steps_done``
        steps of round ``round_index``; empty before ``begin``."""
        if self._plan is None:
            return ""
        started, first, end, steps = self._plan
        elapsed = self._clock() - started
        total = max(1, (end - first) * steps)
        done = (round_index - first) * steps + steps_done
        rounds_done = round_index - first + (1 if steps_done >= steps else 0)
        text = f"{rounds_done}/{end - first} rounds, {format_duration(elapsed)} elapsed"
        if 0 < done < total:
            text += f", ETA {format_duration(elapsed / done * (total - done))}"
        return text

    # ---------------------------------------------------------------------------------- lines
    def notice(self, text: str) -> None:
        """One-line notices (task picked automatically, resumed from round N...) are always shown."""
        self._write_line(text)

    def step(
        self, round_index: int, step: int, steps: int, steps_per_s: float, mean_acc: float, mix: Mapping[str, float],
    ) -> None:
        """The live status line after ``step`` of ``steps`` steps of round ``round_index`` (terminals only)."""
        if self.quiet or not self.live:
            return
        text = fit(
            [
                (f"round {round_index} step {step}/{steps}", 9),
                (self.metric.describe(mean_acc), 7),
                (self.timing(round_index, step), 8),
                (f"{steps_per_s:.2f} steps/s", 3),
                (format_mix(mix, short=True), 5),
            ],
            self.width,
        )
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._line_open = True

    def round_done(self, round_index: int, metrics: Mapping[str, Any]) -> None:
        """One line when round ``round_index`` is over, then its policy warnings."""
        if self.quiet:
            return
        env, timing = metrics.get("env", {}), metrics.get("timing", {})
        policy = metrics.get("policy", {})
        steps_done = self._plan[3] if self._plan is not None else 0
        health = " ".join(
            f"{label} {policy[key]:.2g}"
            for key, label in (("approx_kl", "kl"), ("explained_variance", "ev"))
            if isinstance(policy.get(key), (int, float))
        )
        self._write_line(
            fit(
                [
                    (f"round {round_index}", 9),
                    (f"{self.metric.describe(env.get('mean_final_val_acc', 0.0))} ret {env.get('mean_return', 0.0):+.3f}", 8),
                    (f"germ {env.get('germinated', 0)} foss {env.get('fossilized', 0)} prune {env.get('pruned', 0)}", 7),
                    (self.timing(round_index, steps_done), 8),
                    (f"{timing.get('env_steps_per_s', 0.0):.2f} steps/s", 3),
                    (format_mix(env.get("action_mix", {}), short=True), 5),
                    (health, 4),
                ],
                self.width,
            )
        )
        for warning in policy.get("warnings", ()):  # what they mean: docs/ppo-diagnostics.md
            self._write_line(f"  policy warning: {warning}")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
        self._write_line(render_table(header, rows, title))


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    cells = [[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.ljust(w) for h, w in zip(cells[0], widths)))
    lines.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        lines.append("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths)))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("-", "").replace("+", "").replace("%", "").isdigit()
