"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder.

The official files are Python pickles. They are never given to ``pickle.load``: ``esper_tasks.cifar_files``
reads them with a restricted unpickler that admits only the CIFAR batch layout (numpy arrays, lists,
numbers, strings), so a crafted folder (one shipped inside a shared run directory, say) fails with a
``DatasetFormatError`` instead of running code, whether or not checksums are verified.

``verify_checksums`` (on by default) additionally checks every file's MD5 against the official release
(torchvision's table and ``check_integrity``), which is what real data should pass; a hand-made set in the
same on-disk format (the tests write one) cannot match, so it is loaded with ``verify_checksums = false``.
Downloading goes through torchvision's ``download_and_extract_archive``, which checks the archive's MD5.

The official test batch is the held-out test split; validation is carved from the 50k training images
deterministically from the run seed. No network access unless ``download = true``.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets import cifar as torchvision_cifar
from torchvision.datasets.utils import check_integrity

from esper_core.data import (
    CropFlip,
    DatasetFormatError,
    DatasetNotFoundError,
    channel_stats,
    labels_to_device,
    nhwc_to_device,
    resolve_path,
    split_indices,
)
from esper_core.records import TaskData, TaskInfo
from esper_core.specs import TaskSpec
from esper_core.validators import IncompatibleSettings
from esper_tasks.cifar_files import batch_arrays, class_names

FOLDER = CIFAR10.base_folder  # "cifar-10-batches-py"
EXPECTED_FILES: tuple[str, ...] = tuple(name for name, _ in CIFAR10.train_list + CIFAR10.test_list) + (
    CIFAR10.meta["filename"],
)

#: file name -> the official release's MD5.
OFFICIAL_MD5: dict[str, str] = {name: md5 for name, md5 in CIFAR10.train_list + CIFAR10.test_list} | {
    CIFAR10.meta["filename"]: CIFAR10.meta["md5"]
}


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"cifar10 task option {attribute.name} must be >= 1, got {value}")


@attrs.frozen(kw_only=True)
class Cifar10Options:
    """``download``: fetch the archive into ``data_dir`` when missing (the only source of truth for
    downloading; the CLI's ``--download`` sets it). ``val_size``: images carved from the training set.
    ``verify_checksums``: check the official MD5s (turn off only for a hand-made set in CIFAR's format)."""

    download: bool = attrs.field(
        default=False, metadata={"help": "fetch the archive into task.data_dir when missing (--download sets it)"}
    )
    val_size: int = attrs.field(
        default=5_000, validator=_positive, metadata={"help": "validation images carved from the training set"}
    )
    verify_checksums: bool = attrs.field(
        default=True, metadata={"help": "check the official MD5s (turn off only for a hand-made set in CIFAR's format)"}
    )


def missing_files(data_dir: Path) -> list[str]:
    folder = Path(data_dir) / FOLDER
    return [name for name in EXPECTED_FILES if not (folder / name).is_file()]


def _not_found_message(data_dir: Path) -> str:
    root = resolve_path(data_dir)
    folder = root / FOLDER
    missing = missing_files(root)
    where = f"folder {folder} does not exist" if not folder.is_dir() else f"{folder} lacks {', '.join(missing)}"
    return (
        f"CIFAR-10 not found: {where}.\n"
        f"Expected {folder}/ holding {', '.join(EXPECTED_FILES)} (the python version of CIFAR-10).\n"
        f"To get it: `esper run --task cifar10 --download` (sets task.options.download = true), or download "
        f"{CIFAR10.url} and unpack it into {root} (tar xzf {CIFAR10.filename} -C {root}), "
        f"or point task.data_dir at the folder that contains {FOLDER}/."
    )


@attrs.frozen
class Cifar10Task:
    options: Cifar10Options = attrs.field(factory=Cifar10Options)

    def available(self, data_dir: Path) -> bool:
        return not missing_files(Path(data_dir))

    def _download(self, root: Path) -> None:
        """torchvision fetches the archive, checks its MD5 and unpacks it into ``root`` (nothing is unpickled)."""
        root.mkdir(parents=True, exist_ok=True)
        try:
            torchvision_cifar.download_and_extract_archive(
                CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
            )
        except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad archive a RuntimeError
            raise DatasetNotFoundError(f"downloading CIFAR-10 failed ({error}).\n{_not_found_message(root)}") from error

    def _verify(self, folder: Path) -> None:
        wrong = [name for name in EXPECTED_FILES if not check_integrity(str(folder / name), OFFICIAL_MD5[name])]
        if wrong:
            raise DatasetFormatError(
                f"CIFAR-10 files in {folder} are present but {', '.join(wrong)} failed the official MD5 check. "
                "They are corrupted or not the official release: delete the folder and download again "
                "(`esper run --task cifar10 --download`); for a hand-made set in CIFAR's format set "
                "task.options.verify_checksums = false."
            )

    def _read(self, folder: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [batch_arrays(folder / name) for name in names]
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    def load(self, data_dir: Path, device: torch.device, seed: int) -> TaskData:
        root = resolve_path(data_dir)
        if self.options.download and not self.available(root):
            self._download(root)
        if not self.available(root):
            raise DatasetNotFoundError(_not_found_message(root))
        folder = root / FOLDER
        if self.options.verify_checksums:
            self._verify(folder)
        classes = class_names(folder / CIFAR10.meta["filename"])
        train_images, train_labels = self._read(folder, [name for name, _ in CIFAR10.train_list])
        test_images, test_labels = self._read(folder, [name for name, _ in CIFAR10.test_list])
        n_train = len(train_images)
        if self.options.val_size >= n_train:
            raise IncompatibleSettings(
                f"cifar10 task option val_size={self.options.val_size} leaves no training images: "
                f"the training batches hold {n_train}"
            )
        keep, held_out = split_indices(n_train, self.options.val_size, seed)
        train_x = nhwc_to_device(train_images, "cpu")
        train_y = labels_to_device(train_labels, "cpu")
        kept_x = train_x[keep]
        mean, std = channel_stats(kept_x)
        return TaskData(
            info=TaskInfo(name="cifar10", in_channels=3, image_size=32, num_classes=len(classes)),
            train_x=kept_x.to(device),
            train_y=train_y[keep].to(device),
            val_x=train_x[held_out].to(device),
            val_y=train_y[held_out].to(device),
            test_x=nhwc_to_device(test_images, device),
            test_y=labels_to_device(test_labels, device),
            mean=mean,
            std=std,
            augment=CropFlip(pad=4, flip=True),
        )


SPEC = TaskSpec(
    name="cifar10",
    description="CIFAR-10 from data_dir/cifar-10-batches-py (torchvision format; download opt-in).",
    factory=Cifar10Task,
    options_type=Cifar10Options,
    auto_priority=10,
    topologies=frozenset({"cnn"}),  # 3x32x32 images
)
