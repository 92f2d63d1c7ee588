"""A CIFAR folder is untrusted input: its batch files are pickles, and nothing in them may run code,
with checksums on or off (issue 13: a shared run directory's saved config could point the cifar10 task at
a folder inside the run directory with ``verify_checksums = false``)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from support.hostile_files import RunsCode, py2_cifar_batch
from test_task_cifar10 import PER_BATCH, fake_batch, write_fake_cifar

from esper_core.data import DatasetFormatError
from esper_tasks.cifar10 import FOLDER, SPEC, Cifar10Options
from esper_tasks.cifar_files import batch_arrays, load_batch_file

CPU = torch.device("cpu")


@pytest.mark.parametrize("verify", [False, True])
@pytest.mark.parametrize("target", ["data_batch_2", "test_batch", "batches.meta"])
def test_a_batch_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path, target, verify):
    marker = tmp_path / "code-ran"
    hostile = pickle.dumps({"data": RunsCode(marker), "labels": [0]}, protocol=2)
    pickle.loads(hostile)  # the probe is real: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    write_fake_cifar(tmp_path)
    (tmp_path / FOLDER / target).write_bytes(hostile)

    with pytest.raises(DatasetFormatError) as error:
        SPEC.factory(Cifar10Options(val_size=10, verify_checksums=verify)).load(tmp_path, CPU, seed=0)

    assert not marker.exists()
    message = str(error.value)
    assert target in message
    if not verify:
        assert "refused to load the global __builtin__.exec" in message  # protocol 2 names builtins so


def test_the_python2_byte_layout_of_the_official_files_loads(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(PER_BATCH)]
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_cifar_batch(data, labels))
    images, loaded_labels = batch_arrays(path)
    assert images.shape == (PER_BATCH, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images.transpose(0, 3, 1, 2).reshape(PER_BATCH, 3072), data)
    assert loaded_labels.tolist() == labels


@pytest.mark.parametrize(
    "content, expected",
    [
        ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "uint8 array"),
        ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, "uint8 array"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "one class per image"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10**9]}, "0..9"),
        ([1, 2, 3], "expected a dict"),
    ],
)
def test_a_batch_file_of_another_layout_is_refused_by_name(tmp_path, content, expected):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(DatasetFormatError, match=expected):
        batch_arrays(path)


def test_a_truncated_batch_file_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(fake_batch(1), protocol=2)[:500])
    with pytest.raises(DatasetFormatError, match="not a CIFAR python batch file"):
        batch_arrays(path)


_VALID = pickle.dumps(fake_batch(1), protocol=2)


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_damaged_batch_files_load_or_are_refused_never_anything_else(tmp_path_factory, flips):
    """Any byte damage: the reader returns a dict or raises DatasetFormatError (no other exception, no code)."""
    damaged = bytearray(_VALID)
    for offset, value in flips:
        damaged[offset] = value
    path = tmp_path_factory.mktemp("flip") / "data_batch_1"
    path.write_bytes(bytes(damaged))
    try:
        assert isinstance(load_batch_file(path), dict)
    except DatasetFormatError:
        pass
