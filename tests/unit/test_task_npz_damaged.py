"""Damaged or absurd .npz files are refused with a message naming the file (issue 13: truncated and
bit-flipped archives, a .npy path and labels of 1e9 / 2**62 / uint64 used to end in tracebacks, the first
after trying to allocate a 64 GB output layer)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_task_npz import arrays, load, write

from esper_core.data import DatasetFormatError
from esper_tasks.npz import MAX_CLASSES, NpzOptions


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> bytes:
    return write(tmp_path_factory.mktemp("npz"), **arrays(n_train=20, n_test=5)).read_bytes()


def test_a_truncated_archive_is_refused_by_name(tmp_path, valid_bytes):
    path = tmp_path / "cut.npz"
    path.write_bytes(valid_bytes[: len(valid_bytes) // 2])
    with pytest.raises(DatasetFormatError, match=r"cut\.npz: cannot be read as a \.npz"):
        load(path, tmp_path)


def test_a_single_npy_array_is_refused_with_how_to_save_an_npz(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"single \.npy array.*np\.savez"):
        load(path, tmp_path)


@pytest.mark.parametrize(
    "label, dtype", [(10**9, np.int64), (2**62, np.int64), (2**64 - 1, np.uint64), (MAX_CLASSES, np.int32)]
)
def test_a_huge_label_is_refused_before_anything_is_allocated(tmp_path, label, dtype):
    content = arrays()
    content["y_test"] = content["y_test"].astype(dtype)
    content["y_test"][0] = label
    with pytest.raises(DatasetFormatError, match=rf"'y_test' holds label {label}.*at most {MAX_CLASSES} classes"):
        load(write(tmp_path, **content), tmp_path)


def test_num_classes_is_capped_too():
    with pytest.raises(ValueError, match=f"num_classes must be at most {MAX_CLASSES}"):
        NpzOptions(path="x.npz", num_classes=MAX_CLASSES + 1)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_byte_damage_loads_or_is_refused_never_anything_else(tmp_path, valid_bytes, data):
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(valid_bytes) - 1), st.integers(0, 255)), min_size=1, max_size=6))
    damaged = bytearray(valid_bytes)
    for offset, value in flips:
        damaged[offset] = value
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(damaged))
    try:
        load(path, tmp_path)
    except DatasetFormatError as error:
        assert "damaged.npz" in str(error)
