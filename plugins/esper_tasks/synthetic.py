"""The embedded default task: procedurally generated 10-class 32x32 RGB images, no files needed.

Why it exists: ``esper run`` must work out of the box, offline, in minutes on a CPU, on a task where a
bigger network really does better (otherwise growth cannot pay off). The images are textured shapes in
clutter whose classes are shape/texture conjunctions (``esper_tasks.shapes`` explains the design);
``difficulty`` scales the nuisances (noise, clutter, contrast, shift, scale), not the class rule.

Splits are disjoint draws: each split has its own generator stream derived from the data seed, so
changing ``train_size`` never changes the validation or test images.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch

from esper_core.data import CropFlip, channel_stats, eval_slices
from esper_core.records import TaskData, TaskInfo
from esper_core.specs import TaskSpec
from esper_tasks.shapes import IMAGE_SIZE, NUM_CLASSES, render

_SPLITS = ("train", "val", "test")
_CHUNK = 4096  # images rendered at once: bounds the float scratch memory, fixed so data never depends on it


#: Most images per split: 1M images are 3 GB of uint8 already (CIFAR-10 has 50k).
MAX_SPLIT_SIZE = 1_000_000


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not 1 <= value <= MAX_SPLIT_SIZE:
        raise ValueError(f"synthetic task option {attribute.name} must be in [1, {MAX_SPLIT_SIZE}], got {value}")


def _unit_interval(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"synthetic task option {attribute.name} must lie in [0, 1], got {value}")


@attrs.frozen(kw_only=True)
class SyntheticOptions:
    """``difficulty``: 0 = clean, high-contrast images; 1 = heavy noise, clutter and jitter.
    ``data_seed``: None draws the data from the run seed; an int fixes the dataset across runs (for
    comparing controllers on identical data)."""

    difficulty: float = attrs.field(
        default=0.5, validator=_unit_interval,
        metadata={"help": "0 = clean, high-contrast images; 1 = heavy noise, clutter and jitter"},
    )
    train_size: int = attrs.field(default=10_000, validator=_positive, metadata={"help": "training images generated"})
    val_size: int = attrs.field(default=2_000, validator=_positive, metadata={"help": "validation images generated"})
    test_size: int = attrs.field(default=2_000, validator=_positive, metadata={"help": "held-out test images generated"})
    data_seed: int | None = attrs.field(
        default=None,
        metadata={"help": "unset: the data is drawn from the run seed; an int fixes the dataset across runs "
                          "(to compare controllers on identical data)"},
    )


def split_seed(data_seed: int, split: str) -> int:
    """A distinct, stable 63-bit seed per (data seed, split): the splits are independent streams."""
    mixed = (int(data_seed) * 0x9E3779B97F4A7C15 + (_SPLITS.index(split) + 1) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    mixed ^= mixed >> 31
    return mixed & (2**63 - 1)


def generate_split(size: int, difficulty: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images [size, 3, 32, 32], int64 labels) on the CPU; labels are exactly balanced."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(size) % NUM_CLASSES)[torch.randperm(size, generator=generator)]
    images = torch.empty(size, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    for part in eval_slices(size, _CHUNK):
        images[part] = render(labels[part], difficulty, generator)
    return images, labels


@attrs.frozen
class SyntheticTask:
    options: SyntheticOptions = attrs.field(factory=SyntheticOptions)

    def available(self, data_dir: Path) -> bool:
        return True

    def load(self, data_dir: Path, device: torch.device, seed: int) -> TaskData:
        base = seed if self.options.data_seed is None else self.options.data_seed
        sizes = {"train": self.options.train_size, "val": self.options.val_size, "test": self.options.test_size}
        splits = {
            name: generate_split(sizes[name], self.options.difficulty, split_seed(base, name)) for name in _SPLITS
        }
        mean, std = channel_stats(splits["train"][0])
        on_device = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}
        return TaskData(
            info=TaskInfo(name="synthetic", in_channels=3, image_size=IMAGE_SIZE, num_classes=NUM_CLASSES),
            train_x=on_device["train"][0],
            train_y=on_device["train"][1],
            val_x=on_device["val"][0],
            val_y=on_device["val"][1],
            test_x=on_device["test"][0],
            test_y=on_device["test"][1],
            mean=mean,
            std=std,
            augment=CropFlip(pad=4, flip=True),
        )


SPEC = TaskSpec(
    name="synthetic",
    description="Procedural 10-class 32x32 textured shapes in clutter (offline default; capacity matters).",
    factory=SyntheticTask,
    options_type=SyntheticOptions,
    auto_priority=0,
    topologies=frozenset({"cnn"}),  # 3x32x32 images
)
