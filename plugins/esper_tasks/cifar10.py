"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder, read through torchvision.

Files are read by ``torchvision.datasets.CIFAR10`` itself, which checks every file's MD5 against the
official release before loading (``_check_integrity``: ``check_integrity(path, md5)`` per file, and
the same for ``batches.meta``). That check is what we want for real data, so it stays on by default.
A hand-made set in the same on-disk format (the tests write one) cannot match those checksums; the
option ``verify_checksums = false`` loads it through ``_UnverifiedCIFAR10``, a subclass whose file
tables carry ``md5 = None``. torchvision's own ``check_integrity(path, None)`` then only checks that
each file exists, and everything else (unpickling, reshaping) is torchvision's unchanged code path.
We chose that over overriding private methods because it only relies on the documented-by-code meaning
of a ``None`` checksum, and over our own unpickler because the real path stays the tested path.

The official test batch is the held-out test split; validation is carved from the 50k training images
deterministically from the run seed. No network access unless ``download = true``.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch
from torchvision.datasets import CIFAR10

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

FOLDER = CIFAR10.base_folder  # "cifar-10-batches-py"
EXPECTED_FILES: tuple[str, ...] = tuple(name for name, _ in CIFAR10.train_list + CIFAR10.test_list) + (
    CIFAR10.meta["filename"],
)


class _UnverifiedCIFAR10(CIFAR10):
    """torchvision's CIFAR10 with no expected checksums: files must exist, their MD5 is not checked."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"cifar10 task option {attribute.name} must be >= 1, got {value}")


@attrs.frozen(kw_only=True)
class Cifar10Options:
    """``download``: fetch the archive into ``data_dir`` when missing (the only source of truth for
    downloading; the CLI's ``--download`` sets it). ``val_size``: images carved from the training set.
    ``verify_checksums``: check the official MD5s (turn off only for a hand-made set in CIFAR's format)."""

    download: bool = False
    val_size: int = attrs.field(default=5_000, validator=_positive)
    verify_checksums: bool = True


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

    def _dataset_type(self) -> type[CIFAR10]:
        return CIFAR10 if self.options.verify_checksums else _UnverifiedCIFAR10

    def _download(self, root: Path) -> None:
        """torchvision fetches the archive, checks its MD5 and unpacks it into ``root``."""
        root.mkdir(parents=True, exist_ok=True)
        try:
            self._dataset_type()(str(root), train=True, download=True)
        except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad archive a RuntimeError
            raise DatasetNotFoundError(f"downloading CIFAR-10 failed ({error}).\n{_not_found_message(root)}") from error

    def _read(self, root: Path, train: bool) -> CIFAR10:
        try:
            return self._dataset_type()(str(root), train=train, download=False)
        except RuntimeError as error:  # torchvision: "Dataset not found or corrupted ..."
            raise DatasetFormatError(
                f"CIFAR-10 files in {root / FOLDER} are present but failed torchvision's checks ({error}). "
                "They are corrupted or not the official release: delete the folder and download again "
                "(`esper run --task cifar10 --download`); for a hand-made set in CIFAR's format set "
                "task.options.verify_checksums = false."
            ) from error

    def load(self, data_dir: Path, device: torch.device, seed: int) -> TaskData:
        root = resolve_path(data_dir)
        if self.options.download and not self.available(root):
            self._download(root)
        if not self.available(root):
            raise DatasetNotFoundError(_not_found_message(root))
        train, test = self._read(root, train=True), self._read(root, train=False)
        n_train = len(train.data)
        if self.options.val_size >= n_train:
            raise ValueError(
                f"cifar10 task option val_size={self.options.val_size} leaves no training images: "
                f"the training batches hold {n_train}"
            )
        keep, held_out = split_indices(n_train, self.options.val_size, seed)
        train_x = nhwc_to_device(train.data, "cpu")
        train_y = labels_to_device(train.targets, "cpu")
        kept_x = train_x[keep]
        mean, std = channel_stats(kept_x)
        return TaskData(
            info=TaskInfo(name="cifar10", in_channels=3, image_size=32, num_classes=len(train.classes)),
            train_x=kept_x.to(device),
            train_y=train_y[keep].to(device),
            val_x=train_x[held_out].to(device),
            val_y=train_y[held_out].to(device),
            test_x=nhwc_to_device(test.data, device),
            test_y=labels_to_device(test.targets, device),
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
)
