"""Read back what an offline W&B run logged: the history rows in its ``run-<id>.wandb`` file.

The file is W&B's transaction log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then 32 KiB
blocks of records, each with a 7-byte header (crc32, length, type: full/first/middle/last), as in LevelDB's
log format; every record is a ``wandb_internal_pb2.Record``. wandb ships no reader for it any more, and
the tests need to see which steps and keys reached W&B without a server.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path} is not a W&B transaction log"
    offset, pending = HEADER, b""
    while offset + HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        if room < HEADER:  # the block's tail is padding
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        if kind == 0 and length == 0:  # zero padding up to the next block
            offset += room
            continue
        payload = data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            yield pending + payload
            pending = b""


def history(run_file: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(step, {key: value})`` for every history row logged to the run (W&B's own ``_step``... keys dropped)."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for payload in records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") != "history":
            continue
        values = {}
        for item in record.history.item:
            key = item.key or "/".join(item.nested_key)
            values[key] = json.loads(item.value_json)
        step = values.pop("_step", record.history.step.num)
        rows.append((int(step), {k: v for k, v in values.items() if not k.startswith("_")}))
    return rows


def offline_runs(run_dir: Path) -> list[Path]:
    """The ``run-<id>.wandb`` files under ``RUN_DIR/wandb``, oldest first."""
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
