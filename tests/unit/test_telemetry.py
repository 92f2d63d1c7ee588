"""Telemetry: typed events become plain JSON lines, reach the plugin hook, and files can be cut back."""

from __future__ import annotations

import json
import math

import pytest

from esper_core.events import ActionTaken, EpisodeEnded, RewardGiven
from esper_core.run.telemetry import JsonlSink, Telemetry, read_jsonl, truncate_file


def _reward(step: int, value: float) -> RewardGiven:
    return RewardGiven(round=1, env=0, episode=0, step=step, reward=value, components={"rent": -0.1, "x": value + 0.1})


def test_event_records_are_plain_json_with_type(tmp_path):
    event = ActionTaken(
        round=1, env=2, episode=3, step=4, op="GERMINATE", indices={"op": 1}, values={"tempo": 5},
        legal={"op": True}, relevant=("op", "slot"), log_prob=-1.5, value=0.25, ok=True,
    )
    record = event.to_record()
    assert record["type"] == "action"
    assert record["relevant"] == ["op", "slot"]
    assert json.loads(json.dumps(record)) == record


def test_non_finite_floats_become_null(tmp_path):
    sink = JsonlSink(tmp_path / "e.jsonl")
    telemetry = Telemetry(sink)
    telemetry.emit(_reward(0, math.nan))
    telemetry.close()
    (record,) = read_jsonl(tmp_path / "e.jsonl")
    assert record["reward"] is None


def test_events_reach_file_and_hook_in_order(tmp_path):
    seen = []
    telemetry = Telemetry(JsonlSink(tmp_path / "e.jsonl"), JsonlSink(tmp_path / "m.jsonl"), hook=seen.append)
    for step in range(3):
        telemetry.emit(_reward(step, float(step)))
    telemetry.metrics_line({"round": 1, "policy": {"kl": 0.01}})
    telemetry.close()
    assert [r["step"] for r in read_jsonl(tmp_path / "e.jsonl")] == [0, 1, 2]
    assert read_jsonl(tmp_path / "m.jsonl") == [{"round": 1, "policy": {"kl": 0.01}}]
    assert [r["type"] for r in seen] == ["reward", "reward", "reward", "metrics"]


def test_a_failing_hook_is_reported_once_and_never_stops_the_run(tmp_path):
    errors = []

    def broken(record):
        raise RuntimeError("observer down")

    telemetry = Telemetry(JsonlSink(tmp_path / "e.jsonl"), hook=broken, on_hook_error=errors.append)
    for step in range(4):
        telemetry.emit(_reward(step, 1.0))
    telemetry.close()
    assert len(read_jsonl(tmp_path / "e.jsonl")) == 4
    assert len(errors) == 1 and "observer down" in errors[0]


def test_offsets_let_a_file_be_cut_back_exactly(tmp_path):
    sink = JsonlSink(tmp_path / "e.jsonl")
    telemetry = Telemetry(sink)
    telemetry.emit(_reward(0, 1.0))
    offsets = telemetry.offsets()
    telemetry.emit(_reward(1, 2.0))
    telemetry.close()
    truncate_file(tmp_path / "e.jsonl", offsets["events"])
    assert [r["step"] for r in read_jsonl(tmp_path / "e.jsonl")] == [0]


def test_truncate_refuses_a_file_shorter_than_recorded(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text("{}\n")
    with pytest.raises(ValueError, match="fewer than"):
        truncate_file(path, 100)


def test_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')
    assert read_jsonl(path) == [{"a": 1}]


def test_episode_end_fields():
    event = EpisodeEnded(
        round=0, env=0, episode=0, steps=3, episode_return=1.5, final_val_acc=0.5, best_val_acc=0.6,
        host_params=10, seed_params=2, params_added=1, germinated=1, fossilized=1, pruned=0, faults=0,
    )
    assert event.to_record()["episode_return"] == 1.5


def test_metrics_with_tensors_become_numbers(tmp_path):
    import torch

    telemetry = Telemetry(None, JsonlSink(tmp_path / "m.jsonl"))
    telemetry.metrics_line({"policy": {"kl": torch.tensor(0.5), "per_head": torch.tensor([1.0, float("inf")])}})
    telemetry.close()
    assert read_jsonl(tmp_path / "m.jsonl") == [{"policy": {"kl": 0.5, "per_head": [1.0, None]}}]
