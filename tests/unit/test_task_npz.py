"""The npz task: a user's own arrays, validated with errors that name the file and the array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esper_core.data import CropFlip, DatasetFormatError, DatasetNotFoundError
from esper_core.protocols import Task
from esper_tasks.npz import SPEC, NpzOptions

CPU = torch.device("cpu")


def arrays(n_train: int = 40, n_test: int = 10, size: int = 8, channels: int = 3, classes: int = 4) -> dict:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, size, size, channels), dtype=np.uint8),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, (n_test, size, size, channels), dtype=np.uint8),
        "y_test": (np.arange(n_test) % classes).astype(np.uint8),
    }


def write(tmp_path: Path, name: str = "mine.npz", **content) -> Path:
    path = tmp_path / name
    np.savez(path, **content)
    return path


def load(path: Path | str, data_dir: Path, **options):
    return SPEC.factory(NpzOptions(path=str(path), **options)).load(data_dir, CPU, seed=0)


def test_spec_is_never_picked_automatically_and_follows_the_contract(tmp_path):
    assert SPEC.name == "npz" and SPEC.auto_priority is None and SPEC.options_type is NpzOptions
    task = SPEC.factory(NpzOptions(path="missing.npz"))
    assert isinstance(task, Task) and not task.available(tmp_path)


def test_loads_nhwc_arrays_as_nchw_uint8_with_int64_labels(tmp_path):
    content = arrays()
    data = load(write(tmp_path, **content), tmp_path)
    assert (data.info.name, data.info.in_channels, data.info.image_size, data.info.num_classes) == ("npz", 3, 8, 4)
    assert data.train_x.shape == (36, 3, 8, 8) and data.val_x.shape == (4, 3, 8, 8)  # default val: 10%
    assert data.train_x.dtype == data.test_x.dtype == torch.uint8
    assert data.train_y.dtype == data.val_y.dtype == data.test_y.dtype == torch.int64
    expected_test = torch.from_numpy(content["x_test"]).permute(0, 3, 1, 2)
    assert torch.equal(data.test_x, expected_test) and data.test_y.tolist() == content["y_test"].tolist()
    # Train and val together are the training arrays, each image with its own label.
    all_x = torch.cat([data.train_x, data.val_x]).permute(0, 2, 3, 1).numpy()
    all_y = torch.cat([data.train_y, data.val_y]).numpy()
    order = [int(np.flatnonzero((content["x_train"] == image).all(axis=(1, 2, 3)))[0]) for image in all_x]
    assert sorted(order) == list(range(40)) and (content["y_train"][order] == all_y).all()
    assert len(data.mean) == 3 and isinstance(data.augment, CropFlip) and data.augment.pad == 1


def test_relative_paths_are_found_in_data_dir_and_greyscale_works(tmp_path):
    write(tmp_path, "grey.npz", **arrays(channels=1, size=16))
    data = load("grey.npz", tmp_path, val_size=5, augment_flip=False, augment_pad=3)
    assert data.info.in_channels == 1 and data.info.image_size == 16 and data.val_x.shape[0] == 5
    assert data.augment == CropFlip(pad=3, flip=False)


def test_missing_file_names_every_place_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        load("nowhere.npz", tmp_path)
    assert str(tmp_path / "nowhere.npz") in str(error.value) and "x_train" in str(error.value)


def test_missing_arrays_are_named_with_what_the_file_holds(tmp_path):
    content = arrays()
    del content["y_test"]
    with pytest.raises(DatasetFormatError, match=r"missing array\(s\) y_test; it holds x_train, y_train, x_test"):
        load(write(tmp_path, **content), tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a.update(x_train=a["x_train"].astype(np.float32) / 255),
            r"'x_train' has dtype float32.*astype\(np.uint8\)",
        ),
        (lambda a: a.update(x_test=a["x_test"][..., 0]), r"'x_test' has shape \(10, 8, 8\).*\[N, H, W, C\]"),
        (lambda a: a.update(x_train=a["x_train"].transpose(0, 3, 1, 2)), r"'x_train'.*looks like NCHW"),
        (lambda a: a.update(x_train=a["x_train"][:, :, :6]), r"'x_train'.*square"),
        (lambda a: a.update(x_train=np.zeros((40, 8, 8, 7), np.uint8)), r"'x_train' has 7 channels"),
        (lambda a: a.update(y_train=a["y_train"][:-1]), r"'y_train' has 39 labels but 'x_train' has 40 images"),
        (lambda a: a.update(y_train=a["y_train"].astype(np.float64)), r"'y_train' has dtype float64.*integer"),
        (lambda a: a.update(y_test=a["y_test"].reshape(10, 1)), r"'y_test' has shape \(10, 1\)"),
        (lambda a: a.update(y_train=a["y_train"] - 1), r"'y_train' holds a negative label \(-1\)"),
        (
            lambda a: a.update(x_test=np.zeros((10, 4, 4, 3), np.uint8)),
            r"'x_train' images are \(8, 8, 3\) but 'x_test'",
        ),
        (lambda a: a.update(x_train=a["x_train"][:0], y_train=a["y_train"][:0]), r"'x_train' holds no images"),
    ],
)
def test_bad_arrays_get_an_error_naming_file_array_and_expectation(tmp_path, change, message):
    content = arrays()
    change(content)
    path = write(tmp_path, **content)
    with pytest.raises(DatasetFormatError, match=message) as error:
        load(path, tmp_path)
    assert str(path) in str(error.value)


def test_labels_outside_declared_classes_and_too_large_val_size_are_refused(tmp_path):
    path = write(tmp_path, **arrays(classes=4))
    with pytest.raises(DatasetFormatError, match=r"'y_train' holds label 3, outside num_classes=3"):
        load(path, tmp_path, num_classes=3)
    assert load(path, tmp_path, num_classes=6).info.num_classes == 6
    with pytest.raises(DatasetFormatError, match="val_size=40 leaves no training images"):
        load(path, tmp_path, val_size=40)


def test_pickled_object_arrays_are_refused_without_unpickling(tmp_path):
    content = arrays()
    content["y_train"] = np.array([object()] * 40, dtype=object)
    path = tmp_path / "objects.npz"
    np.savez(path, **content)  # numpy pickles object arrays when saving
    with pytest.raises(DatasetFormatError, match="cannot be read as a .npz of plain arrays"):
        load(path, tmp_path)


def test_split_follows_the_seed(tmp_path):
    path = write(tmp_path, **arrays(n_train=100))
    task = SPEC.factory(NpzOptions(path=str(path), val_size=20))
    first, again, other = (task.load(tmp_path, CPU, seed=s) for s in (3, 3, 4))
    assert torch.equal(first.val_x, again.val_x)
    assert not torch.equal(first.val_x, other.val_x)
