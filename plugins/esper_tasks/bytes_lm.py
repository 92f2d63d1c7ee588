"""What the byte-level language-modelling tasks share: windows, the metric, and TaskData assembly.

A split's documents are joined (each followed by a newline) and cut into non-overlapping windows of
``sequence_length + 1`` bytes; the input is a window's first ``sequence_length`` bytes and the target
the next byte at every position. Inputs stay uint8 on the device (``encode`` widens a batch to int64
ids); targets are int64, as cross-entropy needs them.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable, Sequence

import numpy as np
import torch

from esper_core.data import DatasetFormatError
from esper_core.records import TaskData, TaskInfo, TaskMetric

#: Byte vocabulary: every value a byte can take.
VOCAB = 256

#: Bits per byte, lower is better: 8 is what storing the raw byte costs (a uniform guess), 0 a perfect
#: prediction, so the score ``1 - bpb / 8`` is the fraction of those 8 bits the model saves.
BITS_PER_BYTE = TaskMetric(name="bits_per_byte", from_loss=True, scale=1.0 / math.log(2.0), worst=8.0, best=0.0)

#: Longest window a task accepts (the gpt host's positional table must cover it).
MAX_SEQUENCE_LENGTH = 8192


def windows(documents: Iterable[bytes], sequence_length: int, max_bytes: int) -> np.ndarray:
    """uint8 [N, sequence_length + 1]: the documents joined and cut, at most ``max_bytes`` of them used."""
    stream = b"".join(document + b"\n" for document in documents)[:max_bytes]
    size = sequence_length + 1
    count = len(stream) // size
    return np.frombuffer(stream[: count * size], dtype=np.uint8).reshape(count, size)


def fingerprint(named_documents: Sequence[tuple[str, bytes]]) -> str:
    """sha256 over every document's name and content, in the given order: two corpora are the same data
    exactly when their fingerprints match."""
    digest = hashlib.sha256()
    for name, content in named_documents:
        digest.update(name.encode("utf-8") + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def _keep_bytes(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """No augmentation for text: the bytes are the data."""
    return x


def _token_ids(x: torch.Tensor) -> torch.Tensor:
    return x.long()


def byte_task_data(
    task: str, splits: dict[str, np.ndarray], sequence_length: int, device: torch.device
) -> TaskData:
    """TaskData from each split's windows; a split without a single window is a clear error."""
    tensors = {}
    for split, array in splits.items():
        if array.shape[0] == 0:
            raise DatasetFormatError(
                f"{task} task: the {split} split holds fewer than {sequence_length + 1} bytes, not one window; "
                "add text, or lower task.options.sequence_length"
            )
        whole = torch.from_numpy(array.copy()).to(device)
        tensors[split] = (whole[:, :-1].contiguous(), whole[:, 1:].long())
    return TaskData(
        info=TaskInfo(
            name=task, in_channels=1, image_size=sequence_length, num_classes=VOCAB,
            metric=BITS_PER_BYTE, sequence_length=sequence_length,
        ),
        train_x=tensors["train"][0], train_y=tensors["train"][1],
        val_x=tensors["val"][0], val_y=tensors["val"][1],
        test_x=tensors["test"][0], test_y=tensors["test"][1],
        mean=(0.0,), std=(1.0,),
        augment=_keep_bytes,
        encode=_token_ids,
    )
