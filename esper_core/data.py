"""Device-resident data helpers: augmentation, epoch index streams, splits and statistics.

Why: the run loop keeps whole datasets on the device as uint8 and never goes through a DataLoader, so
everything here works on batched tensors where they already live, with an explicit ``torch.Generator``
so that data order and augmentation are reproducible (and resumable) from saved generator states.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
import torch.nn.functional as F


class DatasetNotFoundError(FileNotFoundError):
    """A task's files are missing; the message says where we looked and how to get them."""


class DatasetFormatError(ValueError):
    """A task's files exist but hold something other than what the task expects."""


def _non_negative(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be >= 0, got {value}")


@attrs.frozen
class CropFlip:
    """Random crop with zero padding and random horizontal flip, for a whole batch in one gather.

    Each sample gets its own offsets ``(dy, dx)`` in ``[0, 2*pad]`` and its own flip bit, drawn from
    ``generator`` on the input's device; the output pixel ``(i, j)`` of sample ``b`` is pixel
    ``(i + dy_b, j + dx_b)`` (``j`` mirrored first when flipped) of the image padded by ``pad`` zeros on
    every side. One gather per call, no loop over images, no host sync, so it is cheap on CUDA and
    deterministic given the generator state. ``generator`` must live on the input's device (or be None
    for torch's default generator of that device).
    """

    pad: int = attrs.field(default=4, validator=_non_negative)
    flip: bool = True

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"CropFlip expects a batch [B, C, H, W], got shape {tuple(x.shape)}")
        return self.many(x, [generator])

    def many(self, x: torch.Tensor, generators: Sequence[torch.Generator | None]) -> torch.Tensor:
        """``x`` holds ``len(generators)`` equal batches one after another ([G*B, C, H, W]); batch g is
        augmented with ``generators[g]`` exactly as ``self(batch_g, generators[g])`` would (the same draws
        in the same order), in one gather for all. Why: a fused env group augments every env's batch with
        that env's own generator without one small-kernel sequence per env."""
        if x.ndim != 4 or x.shape[0] % max(1, len(generators)):
            raise ValueError(f"CropFlip.many expects {len(generators)} equal batches [G*B, C, H, W], got {tuple(x.shape)}")
        batch, channels, height, width = x.shape
        if batch == 0 or (self.pad == 0 and not self.flip):
            return x
        device = x.device
        each = batch // len(generators)
        rows = torch.arange(height, device=device)
        cols = torch.arange(width, device=device)
        span = 2 * self.pad + 1
        draws_y, draws_x, flips = [], [], []
        for generator in generators:
            draws_y.append(torch.randint(0, span, (each, 1), generator=generator, device=device))
            draws_x.append(torch.randint(0, span, (each, 1), generator=generator, device=device))
            if self.flip:
                flips.append(torch.randint(0, 2, (each, 1), generator=generator, device=device))
        dy = draws_y[0] if len(draws_y) == 1 else torch.cat(draws_y)
        dx = draws_x[0] if len(draws_x) == 1 else torch.cat(draws_x)
        col_index = cols.expand(batch, width)
        if self.flip:
            flipped = (flips[0] if len(flips) == 1 else torch.cat(flips)).bool()
            col_index = torch.where(flipped, (width - 1) - col_index, col_index)
        padded_width = width + 2 * self.pad
        padded = F.pad(x, (self.pad, self.pad, self.pad, self.pad)) if self.pad else x
        # Linear index into each padded image plane: [B, H, W] -> broadcast over channels.
        flat_index = (rows.view(1, height, 1) + dy.view(batch, 1, 1)) * padded_width + (
            col_index.view(batch, 1, width) + dx.view(batch, 1, 1)
        )
        flat_index = flat_index.view(batch, 1, height * width).expand(batch, channels, height * width)
        out = torch.gather(padded.reshape(batch, channels, -1), 2, flat_index)
        return out.view(batch, channels, height, width)


def epoch_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None,
    device: torch.device | str,
    samples: int | None = None,
    drop_last: bool = False,
) -> Iterator[torch.Tensor]:
    """Index tensors (int64, on ``device``) for one epoch of shuffled mini-batches.

    ``samples`` fixes how many samples an epoch holds (None: ``n``). Fewer than ``n`` takes the head of
    one permutation; more than ``n`` chains fresh permutations, so every sample is seen once per pass
    and no sample twice within a pass. Why it exists: an "epoch" must mean the same amount of host
    training whatever the number of envs, and the permutation must stay on the device. ``drop_last``
    skips a final short batch (BatchNorm cannot train on a batch of one).
    """
    if n <= 0:
        raise ValueError(f"epoch_batches needs n > 0 samples, got n={n}")
    if batch_size <= 0:
        raise ValueError(f"epoch_batches needs batch_size > 0, got {batch_size}")
    total = n if samples is None else samples
    if total < 0:
        raise ValueError(f"epoch_batches needs samples >= 0, got {samples}")
    passes = max(1, math.ceil(total / n))
    perms = [torch.randperm(n, generator=generator, device=device) for _ in range(passes)]
    order = (perms[0] if passes == 1 else torch.cat(perms))[:total]
    for start in range(0, total, batch_size):
        batch = order[start : start + batch_size]
        if drop_last and batch.numel() < batch_size:
            return
        yield batch


def eval_slices(n: int, batch_size: int) -> Iterator[slice]:
    """Contiguous slices covering ``range(n)`` in order, for evaluation passes (no shuffling needed)."""
    if batch_size <= 0:
        raise ValueError(f"eval_slices needs batch_size > 0, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def split_indices(n: int, held_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (CPU-generator) split of ``range(n)`` into ``(kept, held_out)`` index tensors.

    Why CPU: the same seed must carve the same validation set on every device. Both parts are sorted,
    so the kept split keeps the original sample order.
    """
    if not 0 <= held_out < n:
        raise ValueError(f"cannot hold out {held_out} of {n} samples: need 0 <= held_out < {n}")
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=generator)
    return perm[held_out:].sort().values, perm[:held_out].sort().values


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images [N, C, H, W], in [0, 1] units (what ``TaskData`` holds).

    Computed from exact per-channel histograms of the 256 values: no float copy of the split, no
    rounding drift, and fast (one ``bincount`` per channel).
    """
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"channel_stats expects non-empty uint8 images [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    values = torch.arange(256, dtype=torch.float64, device=x.device) / 255.0
    means, stds = [], []
    for channel in range(x.shape[1]):
        counts = torch.bincount(x[:, channel].reshape(-1), minlength=256).to(torch.float64)
        weights = counts / counts.sum()
        mean = (weights * values).sum()
        variance = (weights * (values - mean).square()).sum()
        means.append(float(mean))
        stds.append(float(variance.sqrt()))
    return tuple(means), tuple(stds)


def nhwc_to_device(images: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 NHWC (the layout of image files and numpy datasets) -> contiguous uint8 NCHW on ``device``."""
    tensor = torch.as_tensor(images)
    if tensor.dtype != torch.uint8 or tensor.ndim != 4:
        raise ValueError(f"expected uint8 images [N, H, W, C], got {tensor.dtype} {tuple(tensor.shape)}")
    return tensor.permute(0, 3, 1, 2).contiguous().to(device)


def labels_to_device(labels: np.ndarray | torch.Tensor | list[int], device: torch.device | str) -> torch.Tensor:
    """Integer labels of any integer dtype -> int64 on ``device``."""
    return torch.as_tensor(np.asarray(labels)).to(device=device, dtype=torch.int64)


def resolve_path(path: str | Path) -> Path:
    """Absolute, user-expanded path: error messages must say exactly where we looked."""
    return Path(path).expanduser().resolve()
