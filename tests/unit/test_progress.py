"""Progress output: live single-line updates on a terminal, plain round lines elsewhere, aligned tables."""

from __future__ import annotations

import io

from esper_core.run.progress import Progress, format_mix, render_table

METRICS = {
    "env": {"mean_final_val_acc": 0.5, "mean_return": 0.25, "germinated": 2, "fossilized": 1, "pruned": 0,
            "action_mix": {"WAIT": 0.75, "GERMINATE": 0.25, "PRUNE": 0.0}},
    "timing": {"env_steps_per_s": 3.0},
    "policy": {"policy_loss": 0.1, "explained_variance": 0.2, "approx_kl": 0.0123,
               "warnings": ["head_unchanged[blueprint]: ratio within [0.99, 1.01] on all 3 decision(s)"]},
}


def test_plain_stream_gets_one_line_per_round_and_no_step_lines():
    stream = io.StringIO()
    progress = Progress(stream)
    progress.step(1, 3, 1, 10, 2.0, 0.4, {"WAIT": 1.0})
    progress.round_done(1, 3, METRICS)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("round 1/3")
    assert "WAIT 75% GERMINATE 25%" in lines[0] and "PRUNE" not in lines[0] and "explained_variance 0.2" in lines[0]
    assert "approx_kl 0.0123" in lines[0]
    assert lines[1] == "  policy warning: head_unchanged[blueprint]: ratio within [0.99, 1.01] on all 3 decision(s)"


def test_live_stream_rewrites_the_step_line_and_closes_it_before_notices():
    stream = io.StringIO()
    progress = Progress(stream, live=True)
    progress.step(1, 3, 1, 10, 2.0, 0.4, {"WAIT": 1.0})
    progress.step(1, 3, 2, 10, 2.0, 0.4, {"WAIT": 1.0})
    progress.notice("hello")
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") == 2 and text.endswith("\nhello\n")


def test_quiet_keeps_notices_and_tables_only():
    stream = io.StringIO()
    progress = Progress(stream, live=True, quiet=True)
    progress.step(1, 3, 1, 10, 2.0, 0.4, {})
    progress.round_done(1, 3, METRICS)
    progress.notice("done")
    assert stream.getvalue() == "done\n"


def test_table_aligns_columns_and_formats_numbers():
    text = render_table(["env", "acc", "params"], [[0, 0.51234, 12345], [10, 0.5, 7]], "title")
    lines = text.splitlines()
    assert lines[0] == "title" and len({len(line) for line in lines[1:]}) == 1
    assert "0.5123" in text and "12,345" in text
    assert format_mix({}) == "-"
