"""``text``: byte-level language modelling on the user's own corpus (a ``.txt`` file, a ``.jsonl`` file,
or a directory of them).

Documents are split by document, never mid-document, using a hash of each document's name (a file's
relative path; ``path:line`` for a JSON Lines record), about 80/10/10 into train/validation/test. Nothing
in the corpus is executed: ``.jsonl`` lines are parsed with ``json.loads`` and only ``field`` is read.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import attrs
import torch

from esper_core.data import DatasetFormatError, DatasetNotFoundError
from esper_core.records import TaskData
from esper_core.specs import TaskSpec
from esper_tasks.bytes_lm import MAX_SEQUENCE_LENGTH, byte_task_data, fingerprint, windows
from esper_tasks.npz import candidate_paths

SUFFIXES = (".txt", ".jsonl")


def _int_range(low: int, high: int):  # noqa: ANN202 - an attrs validator
    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise ValueError(f"text task option {attribute.name!r} must be an integer from {low} to {high}; got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class TextOptions:
    path: str = attrs.field(
        default="corpus.txt",
        metadata={"help": "a .txt or .jsonl file, or a directory of them (relative: to run.data_dir, then the working directory)"},
    )
    field: str = attrs.field(default="text", metadata={"help": "the string field of each .jsonl record holding its text"})
    sequence_length: int = attrs.field(
        default=64, validator=_int_range(1, MAX_SEQUENCE_LENGTH), metadata={"help": "bytes per input window"}
    )
    max_train_bytes: int = attrs.field(
        default=4_000_000, validator=_int_range(1, 1 << 34),
        metadata={"help": "train bytes kept; validation and test keep an eighth each"},
    )


def split_of(name: str) -> str:
    bucket = hashlib.sha256(name.encode("utf-8")).digest()[0] % 10
    return "test" if bucket == 9 else "val" if bucket == 8 else "train"


def _jsonl_documents(file: Path, relative: str, field: str) -> list[tuple[str, bytes]]:
    documents = []
    with file.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                record = json.loads(line)
            except ValueError as error:
                raise DatasetFormatError(f"text task: {where} is not valid JSON ({error})") from None
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise DatasetFormatError(
                    f"text task: {where} has no string field {field!r} (task.options.field); "
                    f"found keys {sorted(record) if isinstance(record, dict) else type(record).__name__}"
                )
            documents.append((f"{relative}:{number}", record[field].encode("utf-8")))
    return documents


class TextTask:
    def __init__(self, options: TextOptions) -> None:
        self.options = options

    def _locate(self, data_dir: Path) -> Path | None:
        return next((p for p in candidate_paths(self.options.path, data_dir) if p.exists()), None)

    def available(self, data_dir: Path) -> bool:
        return self._locate(data_dir) is not None

    def documents(self, data_dir: Path) -> list[tuple[str, bytes]]:
        """``(name, bytes)`` of every document, in name order; clear errors for anything unusable."""
        found = self._locate(data_dir)
        if found is None:
            tried = " and ".join(str(p) for p in candidate_paths(self.options.path, data_dir))
            raise DatasetNotFoundError(
                f"text task: '{self.options.path}' not found (looked at {tried}). Set task.options.path to a "
                ".txt or .jsonl file, or a directory of them."
            )
        if found.is_dir():
            files = sorted(p for p in found.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            if not files:
                raise DatasetNotFoundError(f"text task: no .txt or .jsonl files under {found} (task.options.path)")
        elif found.suffix in SUFFIXES:
            files = [found]
        else:
            raise DatasetFormatError(f"text task: {found} is neither .txt nor .jsonl (task.options.path)")
        root = found if found.is_dir() else found.parent
        documents: list[tuple[str, bytes]] = []
        for file in files:
            relative = file.relative_to(root).as_posix()
            if file.suffix == ".jsonl":
                documents += _jsonl_documents(file, relative, self.options.field)
            else:
                documents.append((relative, file.read_bytes()))
        return sorted(documents)

    def load(self, data_dir: Path, device: torch.device, seed: int) -> TaskData:
        documents = self.documents(Path(data_dir))
        self.fingerprint = fingerprint(documents)
        print(f"text: {len(documents)} documents, fingerprint {self.fingerprint}", file=sys.stderr)
        by_split: dict[str, list[bytes]] = {"train": [], "val": [], "test": []}
        for name, content in documents:
            by_split[split_of(name)].append(content)
        length, budget = self.options.sequence_length, self.options.max_train_bytes
        caps = {"train": budget, "val": max(1, budget // 8), "test": max(1, budget // 8)}
        return byte_task_data("text", {s: windows(d, length, caps[s]) for s, d in by_split.items()}, length, device)


SPEC = TaskSpec(
    name="text",
    description="Byte-level language modelling on your own .txt / .jsonl corpus (task.options.path; bits per byte).",
    factory=TextTask,
    options_type=TextOptions,
    topologies=frozenset({"transformer"}),  # byte sequences (TaskInfo.sequence_length set)
)
