"""The cifar10 task on a tiny fake set written in CIFAR's real on-disk format (no network).

The official files are Python-2 pickles of dicts whose ``str`` keys torchvision reads back as ``str``
(``pickle.load(f, encoding="latin1")``); pickling dicts with ``str`` keys ("data", "labels",
"label_names") gives torchvision exactly what it reads from the real files. Their MD5s cannot match the
official ones, so the fake set is loaded with ``verify_checksums = false``, and a separate test checks
that the default (checksums on) refuses it with an actionable error.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from esper_core.data import DatasetFormatError, DatasetNotFoundError
from esper_core.protocols import Task
from esper_core.validators import IncompatibleSettings
from esper_tasks.cifar10 import EXPECTED_FILES, FOLDER, SPEC, Cifar10Options

PER_BATCH = 12
CPU = torch.device("cpu")
UNVERIFIED = Cifar10Options(val_size=10, verify_checksums=False)


def fake_batch(batch: int) -> dict:
    """Images whose first pixel encodes (batch, index) in its R and G values: identity is checkable."""
    rng = np.random.default_rng(batch)
    data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
    data[:, 0] = batch  # planar row-major: R plane (1024 values), then G, then B
    data[:, 1024] = np.arange(PER_BATCH)
    labels = [(batch * PER_BATCH + i) % 10 for i in range(PER_BATCH)]
    return {"batch_label": f"batch {batch}", "data": data, "labels": labels}


def write_fake_cifar(root: Path, skip: tuple[str, ...] = ()) -> dict[str, dict]:
    folder = root / FOLDER
    folder.mkdir(parents=True)
    contents = {f"data_batch_{b}": fake_batch(b) for b in range(1, 6)} | {"test_batch": fake_batch(6)}
    contents["batches.meta"] = {"label_names": [f"class{k}" for k in range(10)], "num_vis": 3072}
    for name, content in contents.items():
        if name not in skip:
            with open(folder / name, "wb") as handle:
                pickle.dump(content, handle, protocol=2)
    return contents


def image_ids(x: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(v) for v in x[:, :2, 0, 0].tolist()]


def test_spec_contract_and_availability(tmp_path):
    assert SPEC.name == "cifar10" and SPEC.auto_priority == 10 and SPEC.options_type is Cifar10Options
    task = SPEC.factory(Cifar10Options())
    assert isinstance(task, Task)
    assert not task.available(tmp_path)
    write_fake_cifar(tmp_path, skip=("test_batch",))
    assert not task.available(tmp_path)
    (tmp_path / FOLDER / "test_batch").write_bytes(pickle.dumps(fake_batch(6), protocol=2))
    assert task.available(tmp_path)


def test_loads_the_fake_set_through_torchvision_in_nchw_order(tmp_path):
    contents = write_fake_cifar(tmp_path)
    data = SPEC.factory(UNVERIFIED).load(tmp_path, CPU, seed=0)
    info = data.info
    assert (info.name, info.in_channels, info.image_size, info.num_classes) == ("cifar10", 3, 32, 10)
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y), (data.test_x, data.test_y)):
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32) and x.device == CPU
        assert y.dtype == torch.int64 and y.shape == (x.shape[0],)
    assert data.train_x.shape[0] == 5 * PER_BATCH - 10 and data.val_x.shape[0] == 10
    # The test split is test_batch, in order, with CIFAR's planar row-major layout turned into NCHW.
    expected = torch.from_numpy(contents["test_batch"]["data"]).view(PER_BATCH, 3, 32, 32)
    assert torch.equal(data.test_x, expected)
    assert data.test_y.tolist() == contents["test_batch"]["labels"]
    # Train + val are exactly the five training batches, each image keeping its own label.
    label_of = {(b, i): (b * PER_BATCH + i) % 10 for b in range(1, 6) for i in range(PER_BATCH)}
    seen = image_ids(data.train_x) + image_ids(data.val_x)
    assert sorted(seen) == sorted(label_of)
    assert [label_of[k] for k in seen] == data.train_y.tolist() + data.val_y.tolist()
    assert all(0.0 < m < 1.0 for m in data.mean) and all(0.0 < s < 1.0 for s in data.std)
    assert data.augment(data.train_x[:4], torch.Generator().manual_seed(0)).shape == (4, 3, 32, 32)


def test_validation_carve_follows_the_seed(tmp_path):
    write_fake_cifar(tmp_path)
    task = SPEC.factory(UNVERIFIED)
    first, again, other = (task.load(tmp_path, CPU, seed=s) for s in (1, 1, 2))
    assert torch.equal(first.val_x, again.val_x) and torch.equal(first.train_x, again.train_x)
    assert image_ids(first.val_x) != image_ids(other.val_x)
    assert not set(image_ids(first.val_x)) & set(image_ids(first.train_x))


def test_official_checksums_reject_a_hand_made_set_with_a_clear_error(tmp_path):
    write_fake_cifar(tmp_path)
    with pytest.raises(DatasetFormatError) as error:
        SPEC.factory(Cifar10Options(val_size=10)).load(tmp_path, CPU, seed=0)
    message = str(error.value)
    assert str(tmp_path / FOLDER) in message and "verify_checksums" in message and "--download" in message


def test_missing_data_error_says_where_what_and_how(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as error:
        SPEC.factory(Cifar10Options()).load(Path("data"), CPU, seed=0)
    message = str(error.value)
    assert str((tmp_path / "data" / FOLDER).resolve()) in message  # absolute path
    assert all(name in message for name in EXPECTED_FILES)
    assert "esper run --task cifar10 --download" in message and "https://" in message


def test_partially_missing_files_are_named(tmp_path):
    write_fake_cifar(tmp_path, skip=("data_batch_3", "batches.meta"))
    with pytest.raises(DatasetNotFoundError, match="lacks data_batch_3, batches.meta"):
        SPEC.factory(UNVERIFIED).load(tmp_path, CPU, seed=0)


def test_download_goes_through_torchvision_into_data_dir(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **_):
        calls.append((url, Path(download_root), md5))
        write_fake_cifar(Path(download_root))

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", fake_download)
    options = Cifar10Options(download=True, val_size=10, verify_checksums=False)
    data = SPEC.factory(options).load(tmp_path / "new", CPU, seed=0)
    assert data.test_x.shape[0] == PER_BATCH
    assert len(calls) == 1 and calls[0][0].startswith("https://") and calls[0][1] == tmp_path / "new"
    assert calls[0][2] is not None  # the archive's MD5 is still checked


def test_val_size_must_leave_training_images(tmp_path):
    write_fake_cifar(tmp_path)
    # A settings problem, not a broken plugin: the CLI reports IncompatibleSettings with exit 2 and no bug advice.
    with pytest.raises(IncompatibleSettings, match="val_size=60"):
        SPEC.factory(Cifar10Options(val_size=60, verify_checksums=False)).load(tmp_path, CPU, seed=0)
    with pytest.raises(ValueError, match="val_size"):
        Cifar10Options(val_size=0)
