"""Bring your own images: one ``.npz`` file holding ``x_train, y_train, x_test, y_test``.

Images are uint8 NHWC (what numpy/PIL code naturally produces), square, any channel count; labels are
non-negative integers. Everything is validated up front with errors that name the file, the array and
what was expected, because a silently mis-shaped dataset wastes a whole run. Never picked by
``task.name = "auto"`` (it needs ``path``).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch

from esper_core.data import (
    CropFlip,
    DatasetFormatError,
    DatasetNotFoundError,
    channel_stats,
    labels_to_device,
    nhwc_to_device,
    split_indices,
)
from esper_core.records import TaskData, TaskInfo
from esper_core.specs import TaskSpec

REQUIRED_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
#: Most classes a dataset may name. A host's output layer has one unit per class, so a stray huge label
#: (1e9, 2**62) would otherwise ask for gigabytes; this is well above any image classification set.
MAX_CLASSES = 100_000


def _optional_positive(instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"npz task option {attribute.name} must be >= 1 (or unset), got {value}")


def _class_count(instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value > MAX_CLASSES:
        raise ValueError(f"npz task option {attribute.name} must be at most {MAX_CLASSES}, got {value}")


@attrs.frozen(kw_only=True)
class NpzOptions:
    """``path``: the .npz file; a relative path is looked up in ``task.data_dir`` first, then in the
    working directory. ``val_size``: images carved from the training arrays (None: 10%, at least 1).
    ``num_classes``: None infers ``max label + 1``; set it when some classes may be absent.
    ``augment_pad``/``augment_flip``: the random crop's zero padding (None: image size // 8) and the
    random horizontal flip (turn it off where mirroring changes the class, e.g. digits or text)."""

    path: str = attrs.field(
        metadata={"help": "the .npz file (required); a relative path is looked up in task.data_dir, then the working directory"}
    )
    val_size: int | None = attrs.field(
        default=None, validator=_optional_positive,
        metadata={"help": "images carved from the training arrays for validation; unset: 10%, at least 1"},
    )
    num_classes: int | None = attrs.field(
        default=None, validator=[_optional_positive, _class_count],
        metadata={"help": "unset: max label + 1; set it when some classes may be absent"},
    )
    augment_pad: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0)),
        metadata={"help": "zero padding of the random crop; unset: image size // 8"},
    )
    augment_flip: bool = attrs.field(
        default=True,
        metadata={"help": "random horizontal flip (turn it off where mirroring changes the class, e.g. digits or text)"},
    )


def candidate_paths(path: str, data_dir: Path) -> list[Path]:
    given = Path(path).expanduser()
    if given.is_absolute():
        return [given]
    return [(Path(data_dir) / given).resolve(), given.resolve()]


def _check_images(file: Path, name: str, x: np.ndarray) -> None:
    if x.dtype != np.uint8:
        hint = " (scale floats in [0, 1] with (x * 255).round().astype(np.uint8))" if x.dtype.kind == "f" else ""
        raise DatasetFormatError(f"{file}: array '{name}' has dtype {x.dtype}; expected uint8 images{hint}")
    if x.ndim != 4:
        raise DatasetFormatError(
            f"{file}: array '{name}' has shape {x.shape}; expected 4 dimensions [N, H, W, C] "
            "(add a channel axis to greyscale images: x[..., None])"
        )
    n, height, width, channels = x.shape
    if n == 0:
        raise DatasetFormatError(f"{file}: array '{name}' holds no images")
    if height != width:
        looks_nchw = width == channels and x.shape[1] <= 4
        hint = " (it looks like NCHW: transpose with x.transpose(0, 2, 3, 1))" if looks_nchw else ""
        raise DatasetFormatError(
            f"{file}: array '{name}' has shape {x.shape}; expected square NHWC images, H == W{hint}"
        )
    if channels > 4:
        raise DatasetFormatError(
            f"{file}: array '{name}' has {channels} channels (shape {x.shape}); expected NHWC with C in 1..4"
        )


def _check_labels(file: Path, name: str, y: np.ndarray, images: str, n: int) -> None:
    if y.dtype.kind not in "iu":
        raise DatasetFormatError(f"{file}: array '{name}' has dtype {y.dtype}; expected integer class labels")
    if y.ndim != 1:
        raise DatasetFormatError(f"{file}: array '{name}' has shape {y.shape}; expected one label per image, shape [N]")
    if y.shape[0] != n:
        raise DatasetFormatError(f"{file}: array '{name}' has {y.shape[0]} labels but '{images}' has {n} images")
    if y.min() < 0:
        raise DatasetFormatError(f"{file}: array '{name}' holds a negative label ({int(y.min())}); labels must be >= 0")
    if y.max() >= MAX_CLASSES:
        raise DatasetFormatError(
            f"{file}: array '{name}' holds label {int(y.max())}; labels are class indices 0..K-1 and at most "
            f"{MAX_CLASSES} classes are supported (a host has one output per class)"
        )


def read_npz(file: Path, num_classes: int | None) -> tuple[dict[str, np.ndarray], int]:
    """The four validated arrays and the class count."""
    try:
        loaded = np.load(file, allow_pickle=False)
    except Exception as error:  # BadZipFile, a bad header, a truncated file...: not an archive we can read
        raise DatasetFormatError(f"{file}: cannot be read as a .npz of plain arrays ({type(error).__name__}: {error})") from error
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DatasetFormatError(
            f"{file}: is a single .npy array, not a .npz archive; save the four arrays {', '.join(REQUIRED_ARRAYS)} "
            "together with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
        )
    try:
        with loaded as archive:
            missing = [name for name in REQUIRED_ARRAYS if name not in archive.files]
            if missing:
                raise DatasetFormatError(
                    f"{file}: missing array(s) {', '.join(missing)}; it holds {', '.join(archive.files) or 'nothing'} "
                    f"but needs {', '.join(REQUIRED_ARRAYS)}"
                )
            arrays = {name: archive[name] for name in REQUIRED_ARRAYS}
    except DatasetFormatError:
        raise
    except MemoryError as error:
        raise DatasetFormatError(f"{file}: an array is too large for this machine's memory ({error})") from error
    except Exception as error:  # a damaged member (bad CRC, truncated data, bad header)
        raise DatasetFormatError(f"{file}: cannot be read as a .npz of plain arrays ({type(error).__name__}: {error})") from error
    for split in ("train", "test"):
        _check_images(file, f"x_{split}", arrays[f"x_{split}"])
        _check_labels(file, f"y_{split}", arrays[f"y_{split}"], f"x_{split}", arrays[f"x_{split}"].shape[0])
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DatasetFormatError(
            f"{file}: 'x_train' images are {arrays['x_train'].shape[1:]} but 'x_test' images are "
            f"{arrays['x_test'].shape[1:]}; both must share H, W, C"
        )
    largest = int(max(arrays["y_train"].max(), arrays["y_test"].max()))
    if num_classes is None:
        num_classes = largest + 1
    elif largest >= num_classes:
        name = "y_train" if arrays["y_train"].max() >= num_classes else "y_test"
        raise DatasetFormatError(f"{file}: array '{name}' holds label {largest}, outside num_classes={num_classes}")
    if num_classes < 2:
        raise DatasetFormatError(f"{file}: labels name a single class ({num_classes}); a classifier needs at least 2")
    return arrays, num_classes


@attrs.frozen
class NpzTask:
    options: NpzOptions

    def _locate(self, data_dir: Path) -> Path | None:
        return next((path for path in candidate_paths(self.options.path, data_dir) if path.is_file()), None)

    def available(self, data_dir: Path) -> bool:
        return self._locate(data_dir) is not None

    def _pad(self, image_size: int) -> int:
        return self.options.augment_pad if self.options.augment_pad is not None else max(1, image_size // 8)

    def load(self, data_dir: Path, device: torch.device, seed: int) -> TaskData:
        file = self._locate(data_dir)
        if file is None:
            tried = " and ".join(str(path) for path in candidate_paths(self.options.path, data_dir))
            raise DatasetNotFoundError(
                f"npz task: file '{self.options.path}' not found (looked at {tried}). Set task.options.path to "
                f"a .npz holding {', '.join(REQUIRED_ARRAYS)} (uint8 NHWC images, integer labels)."
            )
        arrays, num_classes = read_npz(file, self.options.num_classes)
        n_train = arrays["x_train"].shape[0]
        val_size = self.options.val_size if self.options.val_size is not None else max(1, n_train // 10)
        if val_size >= n_train:
            raise DatasetFormatError(
                f"{file}: val_size={val_size} leaves no training images ('x_train' holds {n_train}); "
                "lower task.options.val_size"
            )
        keep, held_out = split_indices(n_train, val_size, seed)
        train_x = nhwc_to_device(arrays["x_train"], "cpu")
        train_y = labels_to_device(arrays["y_train"], "cpu")
        kept_x = train_x[keep]
        mean, std = channel_stats(kept_x)
        return TaskData(
            info=TaskInfo(
                name="npz", in_channels=train_x.shape[1], image_size=train_x.shape[2], num_classes=num_classes
            ),
            train_x=kept_x.to(device),
            train_y=train_y[keep].to(device),
            val_x=train_x[held_out].to(device),
            val_y=train_y[held_out].to(device),
            test_x=nhwc_to_device(arrays["x_test"], device),
            test_y=labels_to_device(arrays["y_test"], device),
            mean=mean,
            std=std,
            augment=CropFlip(pad=self._pad(train_x.shape[2]), flip=self.options.augment_flip),
        )


SPEC = TaskSpec(
    name="npz",
    description="Your own .npz (x_train, y_train, x_test, y_test; uint8 NHWC images, integer labels).",
    factory=NpzTask,
    options_type=NpzOptions,
    auto_priority=None,
    topologies=frozenset({"cnn"}),  # NHWC images
)
