"""Progress output: live single-line updates on a terminal, plain round lines elsewhere, every line within
its width, elapsed time and an ETA, rounds numbered from 0, aligned tables."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from esper_core.run.progress import MAX_WIDTH, Progress, fit, format_duration, format_mix, render_table

METRICS = {
    "env": {"mean_final_val_acc": 0.5, "mean_return": 0.25, "germinated": 2, "fossilized": 1, "pruned": 0,
            "action_mix": {"WAIT": 0.75, "GERMINATE": 0.25, "PRUNE": 0.0}},
    "timing": {"env_steps_per_s": 3.0},
    "policy": {"policy_loss": 0.1, "explained_variance": 0.2, "approx_kl": 0.0123,
               "warnings": ["head_unchanged[blueprint]: ratio within [0.99, 1.01] on all 3 decision(s)"]},
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_stream_gets_one_line_per_round_numbered_from_zero_with_elapsed_and_eta():
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, clock=clock)
    progress.begin(0, 3, 10)
    progress.step(0, 1, 10, 2.0, 0.4, {"WAIT": 1.0})
    clock.now += 60.0  # round 0 took a minute: two more rounds take two
    progress.round_done(0, METRICS)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("round 0 |")
    assert "1/3 rounds, 1m00s elapsed, ETA 2m00s" in lines[0]
    assert "WAIT 75% GERM 25%" in lines[0] and "PRUNE" not in lines[0]
    assert "kl" not in lines[0]  # no room left within MAX_WIDTH: the policy's numbers are in metrics.jsonl
    assert lines[1] == "  policy warning: head_unchanged[blueprint]: ratio within [0.99, 1.01] on all 3 decision(s)"


def test_the_last_round_has_no_eta_and_a_resumed_session_counts_its_own_rounds():
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, clock=clock)
    progress.begin(5, 7, 4)  # resumed at round 5, two rounds to play
    clock.now += 30.0
    progress.round_done(5, METRICS)
    clock.now += 30.0
    progress.round_done(6, METRICS)
    first, last = [line for line in stream.getvalue().splitlines() if line.startswith("round")]
    assert first.startswith("round 5 |") and "1/2 rounds, 30s elapsed, ETA 30s" in first
    assert last.startswith("round 6 |") and "2/2 rounds, 1m00s elapsed" in last and "ETA" not in last


def test_the_policy_numbers_come_when_there_is_room():
    stream = io.StringIO()
    progress = Progress(stream)
    progress.round_done(0, {**METRICS, "env": {**METRICS["env"], "action_mix": {"WAIT": 1.0}}})
    assert stream.getvalue().splitlines()[0].endswith("| WAIT 100% | kl 0.012 ev 0.2")


def test_eta_follows_the_steps_done():
    clock = Clock()
    progress = Progress(io.StringIO(), clock=clock)
    progress.begin(0, 2, 10)
    clock.now += 8.0  # 4 of 20 steps in 8 s: 16 steps left at 2 s each
    assert progress.timing(0, 4) == "0/2 rounds, 8s elapsed, ETA 32s"
    assert Progress(io.StringIO()).timing(0, 4) == ""  # no session begun: no timing


def test_live_stream_rewrites_the_step_line_and_closes_it_before_notices():
    stream = io.StringIO()
    progress = Progress(stream, live=True, width=100)
    progress.begin(0, 3, 10)
    progress.step(0, 1, 10, 2.0, 0.4, {"WAIT": 1.0})
    progress.step(0, 2, 10, 2.0, 0.4, {"WAIT": 1.0})
    progress.notice("hello")
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") == 2 and text.endswith("\nhello\n")
    assert "\r\x1b[2Kround 0 step 2/10 | acc 0.400 | 0/3 rounds," in text


def test_quiet_keeps_notices_and_tables_only():
    stream = io.StringIO()
    progress = Progress(stream, live=True, quiet=True)
    progress.step(0, 1, 10, 2.0, 0.4, {})
    progress.round_done(0, METRICS)
    progress.notice("done")
    assert stream.getvalue() == "done\n"


_number = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
_mix = st.dictionaries(
    st.sampled_from(["WAIT", "GERMINATE", "SET_ALPHA_TARGET", "PRUNE", "FOSSILIZE", "ADVANCE", "SOME_PLUGIN_OP"]),
    st.floats(min_value=0.0, max_value=1.0),
)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(min_value=20, max_value=200),
    round_index=st.integers(min_value=0, max_value=10**6),
    steps=st.integers(min_value=1, max_value=10_000),
    numbers=st.lists(_number, min_size=5, max_size=5),
    counts=st.lists(st.integers(min_value=0, max_value=10**9), min_size=3, max_size=3),
    mix=_mix,
    elapsed=st.floats(min_value=0.0, max_value=1e7),
)
def test_every_progress_line_fits_its_width(width, round_index, steps, numbers, counts, mix, elapsed):
    """Whatever the numbers, no round or step line is wider than the terminal allows nor than MAX_WIDTH."""
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, live=True, width=min(width, MAX_WIDTH), clock=clock)
    progress.begin(round_index, round_index + 3, steps)
    clock.now += elapsed
    acc, ret, speed, kl, ev = numbers
    progress.step(round_index, max(1, steps // 2), steps, speed, acc, mix)
    progress.round_done(round_index, {
        "env": {"mean_final_val_acc": acc, "mean_return": ret, "germinated": counts[0], "fossilized": counts[1],
                "pruned": counts[2], "action_mix": mix},
        "timing": {"env_steps_per_s": speed},
        "policy": {"approx_kl": kl, "explained_variance": ev},
    })
    for line in stream.getvalue().replace("\r\x1b[2K", "\n").splitlines():
        assert len(line) <= min(width, MAX_WIDTH), line


def test_fit_drops_the_least_useful_parts_first():
    parts = [("round 3", 9), ("throughput 1.0", 3), ("val acc 0.5", 8), ("mix WAIT 100%", 5)]
    assert fit(parts, 200) == "round 3 | throughput 1.0 | val acc 0.5 | mix WAIT 100%"
    assert fit(parts, 40) == "round 3 | val acc 0.5 | mix WAIT 100%"
    assert fit(parts, 22) == "round 3 | val acc 0.5"
    assert fit([("a very long single part", 1)], 10) == "a very lo…"


def test_durations_read_at_a_glance():
    assert [format_duration(s) for s in (0, 42.4, 60, 185, 3600 * 2 + 60 * 7 + 5)] == ["0s", "42s", "1m00s", "3m05s", "2h07m"]


def test_table_aligns_columns_and_formats_numbers():
    text = render_table(["env", "acc", "params"], [[0, 0.51234, 12345], [10, 0.5, 7]], "title")
    lines = text.splitlines()
    assert lines[0] == "title" and len({len(line) for line in lines[1:]}) == 1
    assert "0.5123" in text and "12,345" in text
    assert format_mix({}) == "-"
    assert format_mix({"SET_ALPHA_TARGET": 0.5, "WAIT": 0.5}, short=True) == "ALPHA 50% WAIT 50%"
