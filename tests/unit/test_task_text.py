"""The byte-level text tasks: split by document, fingerprints, clear errors, and the declared metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, strategies as st

from esper_core.data import DatasetFormatError, DatasetNotFoundError
from esper_core.records import ACCURACY
from esper_tasks.bytes_lm import BITS_PER_BYTE
from esper_tasks.pysource import PySourceOptions, PySourceTask, source_files, split_of
from esper_tasks.text import TextOptions, TextTask

CPU = torch.device("cpu")


def write_tree(root: Path, files: int = 40, size: int = 300) -> None:
    for i in range(files):
        folder = root / ("pkg" if i % 2 else "") / ("test" if i % 7 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i}.py").write_text(f"# module {i}\n" + "x = 1\n" * (size // 6))


def test_pysource_splits_by_file_skips_test_suites_and_is_deterministic(tmp_path: Path) -> None:
    write_tree(tmp_path)
    files = source_files(tmp_path)
    assert files and all("test/" not in relative for relative, _ in files)
    splits = {split_of(relative) for relative, _ in files}
    assert splits == {"train", "val", "test"}
    options = PySourceOptions(root=str(tmp_path), sequence_length=16)
    first, second = PySourceTask(options), PySourceTask(options)
    a, b = first.load(tmp_path, CPU, 0), second.load(tmp_path, CPU, 1)
    assert first.fingerprint == second.fingerprint and torch.equal(a.val_x, b.val_x)
    assert a.train_x.shape[1] == 16 and a.train_y.shape == a.train_x.shape
    assert torch.equal(a.train_x[:, 1:].long(), a.train_y[:, :-1])  # targets are the next bytes
    assert a.info.metric == BITS_PER_BYTE and a.info.sequence_length == 16


def test_pysource_refuses_a_corpus_with_another_fingerprint_naming_both(tmp_path: Path) -> None:
    write_tree(tmp_path)
    task = PySourceTask(PySourceOptions(root=str(tmp_path)))
    task.load(tmp_path, CPU, 0)
    (tmp_path / "m1.py").write_text("changed\n" * 100)  # a file that differs
    pinned = PySourceTask(PySourceOptions(root=str(tmp_path), expected_fingerprint=task.fingerprint))
    with pytest.raises(DatasetFormatError, match=task.fingerprint):
        pinned.load(tmp_path, CPU, 0)


def test_pysource_on_the_running_python_is_available() -> None:
    assert PySourceTask(PySourceOptions()).available(Path("."))


def test_text_task_reads_jsonl_by_field_and_splits_by_record(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"body": f"record {i} " * 20}) for i in range(60)))
    task = TextTask(TextOptions(path=str(corpus), field="body", sequence_length=8))
    data = task.load(tmp_path, CPU, 0)
    assert data.val_x.shape[0] > 0 and data.test_x.shape[0] > 0 and data.train_x.dtype == torch.uint8
    names = {name for name, _ in task.documents(tmp_path)}
    assert names == {f"c.jsonl:{i}" for i in range(1, 61)}


def test_text_task_errors_name_the_file_line_and_option(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="task.options.path"):
        TextTask(TextOptions(path=str(tmp_path / "missing.txt"))).load(tmp_path, CPU, 0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"other": 1}\n')
    with pytest.raises(DatasetFormatError, match=r"bad.jsonl:2 .*'text'"):
        TextTask(TextOptions(path=str(bad))).load(tmp_path, CPU, 0)
    small = tmp_path / "small.txt"
    small.write_text("tiny")
    with pytest.raises(DatasetFormatError, match="sequence_length"):
        TextTask(TextOptions(path=str(small), sequence_length=64)).load(tmp_path, CPU, 0)


@given(st.floats(0.0, 8.0), st.floats(0.0, 8.0))
def test_bits_per_byte_score_rises_as_bits_per_byte_fall(a: float, b: float) -> None:
    """The direction the task declares is the one every score-reading part of the core follows."""
    assert not BITS_PER_BYTE.higher_is_better
    if a < b - 1e-6:  # beyond float resolution
        assert BITS_PER_BYTE.score(a) > BITS_PER_BYTE.score(b)
    elif a <= b:
        assert BITS_PER_BYTE.score(a) >= BITS_PER_BYTE.score(b)
    loss = a * math.log(2.0)  # nats per byte
    assert BITS_PER_BYTE.value(loss=loss, accuracy=0.0) == pytest.approx(a)
    assert BITS_PER_BYTE.value_of(BITS_PER_BYTE.score(a)) == pytest.approx(a, abs=1e-9)


@given(st.floats(0.0, 1.0), st.floats(0.0, 20.0))
def test_accuracy_score_is_accuracy_bit_for_bit(accuracy: float, loss: float) -> None:
    assert ACCURACY.score(ACCURACY.value(loss=loss, accuracy=accuracy)) == accuracy
