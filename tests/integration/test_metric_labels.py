"""What people read is labelled by the task's declared metric: a byte-level LM run's console, `esper report`
and `esper eval` speak of bits per byte (and of its score), a CNN run's of accuracy as they always did, and
a run directory from before the metric was recorded reads as accuracy."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from esper_core.cli import main
from esper_core.records import ACCURACY, TaskMetric
from esper_core.run.progress import Progress
from esper_tasks.bytes_lm import BITS_PER_BYTE
from esper_core.config.loading import deep_merge
from support.run_configs import SMALL

ONE_ROUND = {"policy": {"name": "heuristic"}, "run": {"envs": 1, "episode_length": 3, "rounds": 1, "seed": 0}}


def _cli(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny run per topology: gpt_impaired on a text folder, tiny_cnn on the synthetic task."""
    root = tmp_path_factory.mktemp("metric_runs")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(40):  # documents, so every split gets some
        (corpus / f"doc{i}.txt").write_text(f"def f{i}(x):\n    return x * {i}\n" * 6)
    text = {
        "task": {"name": "text", "options": {"path": str(corpus), "sequence_length": 8, "max_train_bytes": 4096}},
        "host": {"name": "gpt_impaired", "options": {"width": 8, "heads": 2, "context": 8}},
    }
    made = {}
    for name, override in (("lm", text), ("cnn", {"host": {"name": "tiny_cnn"}})):
        config = root / f"{name}.json"  # the text task replaces the synthetic one (and its options) outright
        config.write_text(json.dumps({**deep_merge(deep_merge(SMALL, ONE_ROUND), override), **override}))
        _cli(["run", "--config", str(config), "--run-dir", str(root), "--name", name])
        made[name] = root / name
    return made


def test_the_run_records_its_task_metric(runs) -> None:
    assert json.loads((runs["lm"] / "config.json").read_text())["metric"]["name"] == "bits_per_byte"
    assert json.loads((runs["cnn"] / "config.json").read_text())["metric"] == ACCURACY.to_dict()


def test_report_names_the_metric_for_an_lm_and_accuracy_for_a_cnn(runs, tmp_path) -> None:
    lm = _cli(["report", str(runs["lm"])])
    assert "metric: bits per byte" in lm and "score (1 - bits per byte / 8)" in lm and "val score" in lm
    assert "val acc" not in lm
    cnn = _cli(["report", str(runs["cnn"])])
    assert "val acc" in cnn and "metric:" not in cnn and "score" not in cnn
    old = tmp_path / "old"  # a run from before the metric was recorded: accuracy, as then
    shutil.copytree(runs["lm"], old)
    described = json.loads((old / "config.json").read_text())
    del described["metric"]
    (old / "config.json").write_text(json.dumps(described))
    assert "val acc" in _cli(["report", str(old)])
    compared = _cli(["report", str(runs["lm"]), str(runs["cnn"]), "--out", str(tmp_path / "cmp")])
    assert "val score, first rounds" in compared  # two metrics: each run's own score


def test_eval_reports_bits_per_byte_for_an_lm_and_accuracy_for_a_cnn(runs) -> None:
    lm = _cli(["eval", str(runs["lm"]), "--no-observers"])
    assert "test bpb" in lm and "mean test bits per byte" in lm and "(score " in lm
    result = json.loads((runs["lm"] / "eval.json").read_text())
    assert result["mean_test_metric"] == pytest.approx(BITS_PER_BYTE.value_of(result["mean_test_acc"]))
    cnn = _cli(["eval", str(runs["cnn"]), "--no-observers"])
    assert "test acc" in cnn and "mean test accuracy" in cnn and "bpb" not in cnn


@pytest.mark.parametrize(("metric", "shown"), [(ACCURACY, "acc 0.250 ret"), (BITS_PER_BYTE, "bpb 6.000 ret")])
def test_console_round_line_shows_the_metric(metric: TaskMetric, shown: str) -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream, live=False)
    progress.metric = metric
    progress.round_done(0, {"env": {"mean_final_val_acc": 0.25, "mean_return": 0.0}})
    assert shown in stream.getvalue()


@given(
    name=st.sampled_from(["accuracy", "bits_per_byte", "perplexity"]),
    worst=st.floats(-10, 10), best=st.floats(-10, 10), score=st.floats(0, 1),
)
def test_a_recorded_metric_reads_back_the_same_and_damage_reads_as_accuracy(
    name: str, worst: float, best: float, score: float
) -> None:
    if worst == best:
        assert TaskMetric.from_record({"name": name, "worst": worst, "best": best}) == ACCURACY
        return
    metric = TaskMetric(name=name, worst=worst, best=best)
    assert TaskMetric.from_record(json.loads(json.dumps(metric.to_dict()))) == metric
    assert ACCURACY.describe(score) == f"acc {score:.3f}"  # classification lines unchanged
    for junk in (None, "accuracy", [1], {"worst": "x"}):
        assert TaskMetric.from_record(junk) == ACCURACY
