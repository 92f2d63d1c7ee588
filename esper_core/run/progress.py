"""Live progress for `esper run`: one rewritten status line on a terminal, plain lines otherwise.

Why two modes: a terminal wants to see every step move; a log file (CI, nohup, a pipe) wants one line
per round that still reads well when grepped. No third-party dependency.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping, Sequence, TextIO


def format_mix(mix: Mapping[str, float]) -> str:
    """``{"WAIT": 0.8, "GERMINATE": 0.1}`` -> ``WAIT 80% GERMINATE 10%`` (largest first, zeros skipped)."""
    parts = [f"{op} {share:.0%}" for op, share in sorted(mix.items(), key=lambda kv: -kv[1]) if share > 0]
    return " ".join(parts) or "-"


class Progress:
    """Prints progress to ``stream``; ``live`` (default: whether it is a terminal) rewrites one line."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) if live is None else live
        self.quiet = quiet
        self._line_open = False

    def _write_line(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def notice(self, text: str) -> None:
        """One-line notices (task picked automatically, resumed from round N...) are always shown."""
        self._write_line(text)

    def step(
        self, round_index: int, rounds: int, step: int, steps: int, steps_per_s: float, mean_acc: float,
        mix: Mapping[str, float],
    ) -> None:
        if self.quiet or not self.live:
            return
        text = (
            f"round {round_index}/{rounds} step {step}/{steps} | {steps_per_s:.2f} env-steps/s | "
            f"val acc {mean_acc:.3f} | {format_mix(mix)}"
        )
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._line_open = True

    def round_done(self, round_index: int, rounds: int, metrics: Mapping[str, Any]) -> None:
        if self.quiet:
            return
        env, timing = metrics.get("env", {}), metrics.get("timing", {})
        policy = metrics.get("policy", {})
        extra = ""
        for key in ("policy_loss", "value_loss", "explained_variance", "approx_kl", "grad_norm"):
            if isinstance(policy.get(key), (int, float)):
                extra += f" | {key} {policy[key]:.3g}"
        self._write_line(
            f"round {round_index}/{rounds} | {timing.get('env_steps_per_s', 0.0):.2f} env-steps/s | "
            f"val acc {env.get('mean_final_val_acc', 0.0):.3f} | return {env.get('mean_return', 0.0):+.3f} | "
            f"germ {env.get('germinated', 0)} foss {env.get('fossilized', 0)} prune {env.get('pruned', 0)} | "
            f"{format_mix(env.get('action_mix', {}))}{extra}"
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
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("-", "").replace("+", "").replace("%", "").isdigit()
