"""The report's series from events alone: the spread over envs per round, the seed lifecycle of every slot
(stages as non-overlapping spans within their episode, one labelled life per germination), the final
morphology, and the healthy ranges that docs/ppo-diagnostics.md defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esper_core.cli.report import write_report
from esper_core.cli.report_data import SeedLife, Span, final_morphology, lifecycle, spreads
from esper_core.cli.report_health import HEALTHY, entropy_floor
from esper_core.growth.lifecycle import TRANSITIONS
from esper_core.run.rundir import RunDir
from esper_core.stages import SeedStage

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _start(r: int, env: int = 0) -> dict:
    return {"type": "episode_start", "round": r, "env": env, "episode": r}


def _move(r: int, step: int, slot: str, to: str, blueprint: str | None = "conv_small", env: int = 0) -> dict:
    return {"type": "seed_transition", "round": r, "env": env, "episode": r, "step": step, "slot": slot,
            "from_stage": "?", "to_stage": to, "reason": "", "blueprint": blueprint}


def _end(r: int, env: int, acc: float) -> dict:
    return {"type": "episode_end", "round": r, "env": env, "final_val_acc": acc, "episode_return": 2 * acc,
            "params_added": 10 * env, "host_params": 100, "germinated": 1, "fossilized": 0, "pruned": 0, "best_val_acc": acc}


def test_spread_is_the_mean_and_range_over_envs_per_round() -> None:
    events = [_end(0, 0, 0.2), _end(0, 1, 0.4), _end(0, 2, 0.9), _end(1, 0, 0.5), _end(1, 1, 0.5), _end(1, 2, 0.5)]
    acc = spreads(events)["final_val_acc"]
    assert acc.round == (0, 1) and acc.envs == 3
    assert acc.mean == pytest.approx((0.5, 0.5)) and acc.low == (0.2, 0.5) and acc.high == (0.9, 0.5)


def test_a_seed_s_stages_become_spans_and_its_life_a_label() -> None:
    events = [
        _start(0), _move(0, 1, "s0", "GERMINATED"), _move(0, 2, "s0", "TRAINING"), _move(0, 4, "s0", "BLENDING"),
        _move(0, 6, "s0", "HOLDING"), _move(0, 7, "s0", "FOSSILIZED"),
        _start(1), _move(1, 0, "s1", "GERMINATED", "norm"), _move(1, 1, "s1", "TRAINING", "norm"),
        _move(1, 3, "s1", "PRUNED", "norm"), _move(1, 4, "s1", "EMBARGOED", None),
    ]
    spans, lives = lifecycle(events, episode_length=10)
    expected = [
        Span(0, "s0", "GERMINATED", 1, 2, "conv_small"), Span(0, "s0", "TRAINING", 2, 4, "conv_small"),
        Span(0, "s0", "BLENDING", 4, 6, "conv_small"), Span(0, "s0", "HOLDING", 6, 7, "conv_small"),
        Span(0, "s0", "FOSSILIZED", 7, 10, "conv_small"),  # closed when its episode ended
        Span(0, "s1", "GERMINATED", 10, 11, "norm"), Span(0, "s1", "TRAINING", 11, 13, "norm"),
        Span(0, "s1", "PRUNED", 13, 14, "norm"), Span(0, "s1", "EMBARGOED", 14, 20, None),
    ]
    assert sorted(spans, key=lambda s: (s.slot, s.start)) == expected
    assert lives == [SeedLife(0, "s0", "conv_small", 1, 7, "FOSSILIZED"), SeedLife(0, "s1", "norm", 10, 13, "PRUNED")]
    morphology = final_morphology(events, ["s0", "s1", "s2"])
    assert morphology[0]["round"] == 1
    assert morphology[0]["slots"] == {"s0": ("DORMANT", None), "s1": ("EMBARGOED", None), "s2": ("DORMANT", None)}


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[dict], int]:
    """Events of a few rounds, envs and slots whose transitions follow the lifecycle table."""
    length = draw(st.integers(2, 12))
    events = []
    for r in range(draw(st.integers(1, 4))):
        for env in range(draw(st.integers(1, 3))):
            events.append(_start(r, env))
            for slot in ("s0", "s1"):
                stage, step = SeedStage.DORMANT, 0
                while step < length and draw(st.booleans()):
                    stage = draw(st.sampled_from(sorted(TRANSITIONS[stage], key=lambda s: s.name))) if TRANSITIONS[stage] else stage
                    if stage is SeedStage.FOSSILIZED or not TRANSITIONS[stage]:
                        events.append(_move(r, step, slot, stage.name, env=env))
                        break
                    events.append(_move(r, step, slot, stage.name, env=env))
                    step += draw(st.integers(0, 2))
    return events, length


@settings(max_examples=80, deadline=None)
@given(runs())
def test_spans_never_overlap_stay_in_their_episode_and_every_germination_is_one_life(run) -> None:
    events, length = run
    spans, lives = lifecycle(events, length)
    by_slot: dict[tuple[int, str], list[Span]] = {}
    for span in spans:
        assert span.stage != "DORMANT" and span.end > span.start
        assert span.start // length == (span.end - 1) // length  # within one episode
        by_slot.setdefault((span.env, span.slot), []).append(span)
    for slot_spans in by_slot.values():
        ordered = sorted(slot_spans, key=lambda s: s.start)
        assert all(a.end <= b.start for a, b in zip(ordered, ordered[1:]))
    moves = [e for e in events if e["type"] == "seed_transition"]
    assert len(lives) == sum(e["to_stage"] == "GERMINATED" for e in moves)
    fossilized = sum(e["to_stage"] == "FOSSILIZED" for e in moves)
    assert sum(life.outcome == "FOSSILIZED" for life in lives) == fossilized
    assert all(life.start // length == max(life.end - 1, life.start) // length for life in lives)


def test_healthy_ranges_are_the_documented_ones() -> None:
    text = (DOCS / "ppo-diagnostics.md").read_text()
    row = lambda key: next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))  # noqa: E731
    low, high = HEALTHY["approx_kl"]
    assert f"{low:.0e}..{high:.0e}".replace("e-0", "e-") in row("approx_kl")
    assert f"> {HEALTHY['explained_variance'][0]} is healthy" in row("explained_variance")
    floor = re.search(r"entropy_warn\[<head>\]` \(default ([0-9.]+)\)", text)
    assert floor and float(floor.group(1)) == HEALTHY["entropy_relevant"][0]
    assert entropy_floor({"policy": {"options": {"entropy_warn": {"blueprint": 0.05}}}}) == 0.05
    assert entropy_floor({}) == HEALTHY["entropy_relevant"][0]


def test_figures_are_written_and_a_run_without_seeds_has_no_timeline(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    seeded = RunDir.create(tmp_path, "seeded")
    seeded.config_path.write_text(json.dumps({"config": {"run": {"episode_length": 10}}, "action_layout": {"slot": ["s0", "s1"]}}))
    seeded.events_path.write_text("".join(json.dumps(e) + "\n" for e in [
        _start(0), _move(0, 1, "s0", "GERMINATED"), _move(0, 2, "s0", "TRAINING"), _end(0, 0, 0.3)]))
    seeded.metrics_path.write_text(json.dumps({"round": 0, "env": {"mean_final_val_acc": 0.3, "mean_return": 0.6,
                                               "germinated": 1, "fossilized": 0, "pruned": 0}}) + "\n")
    _, plots, why_not = write_report(seeded)
    assert why_not is None and [p.name for p in plots] == ["curves.png", "lifecycle.png", "morphology.png"]
    empty = RunDir.create(tmp_path, "empty")
    empty.config_path.write_text(json.dumps({"config": {}}))
    empty.events_path.write_text(json.dumps(_start(0)) + "\n" + json.dumps(_end(0, 0, 0.3)) + "\n")
    empty.metrics_path.write_text("")
    _, plots, _ = write_report(empty)
    assert [p.name for p in plots] == ["curves.png", "morphology.png"]


def test_round_axes_have_whole_number_ticks() -> None:
    pytest.importorskip("matplotlib")
    from esper_core.cli.report import pyplot
    from esper_core.cli.report_plots import integer_rounds

    plt = pyplot()
    figure, axis = plt.subplots()
    axis.plot([0, 1, 2], [0.1, 0.2, 0.3])
    integer_rounds(axis)
    figure.canvas.draw()
    ticks = [t for t in axis.get_xticks() if 0 <= t <= 2]
    plt.close(figure)
    assert ticks and all(float(t).is_integer() for t in ticks)
