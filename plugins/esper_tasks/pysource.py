"""``pysource``: byte-level language modelling over the Python standard library's own source files.

Why: a real text task that needs no download and exists wherever Python does. The corpus is every
``.py`` file under the standard library directory (``sysconfig``'s ``stdlib`` path), minus the test
suites and third-party packages, in sorted order of their relative paths. Files are split by a hash of
their relative path (about 80/10/10 into train/validation/test), so a file never straddles splits and a
file's split does not depend on which other files exist.

Comparable across machines: the file set differs between Python versions (3.11 and 3.12 ship different
files), so there is no list that could be pinned offline. Instead the corpus is identified by its
fingerprint (sha256 over every file's relative path and content; ``fingerprint`` in ``bytes_lm``), shown
when the task loads. Two runs are comparable exactly when their fingerprints match; set
``expected_fingerprint`` to make a run refuse any other corpus, with an error naming both.
"""

from __future__ import annotations

import hashlib
import sys
import sysconfig
from pathlib import Path

import attrs
import torch

from esper_core.data import DatasetFormatError, DatasetNotFoundError
from esper_core.records import TaskData
from esper_core.specs import TaskSpec
from esper_tasks.bytes_lm import MAX_SEQUENCE_LENGTH, byte_task_data, fingerprint, windows

#: Directories of the standard library that are not its source proper: test suites, bundled third-party
#: packages, and the IDLE / 2to3 test data (much of it deliberately odd code).
EXCLUDED_DIRS = frozenset({"test", "tests", "site-packages", "dist-packages", "idle_test", "__pycache__", "lib2to3"})

#: Train/validation/test shares out of 10 buckets of a file's path hash.
VAL_BUCKET, TEST_BUCKET = 8, 9


def _int_range(low: int, high: int):  # noqa: ANN202 - an attrs validator
    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise ValueError(f"pysource task option {attribute.name!r} must be an integer from {low} to {high}; got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class PySourceOptions:
    sequence_length: int = attrs.field(
        default=64, validator=_int_range(1, MAX_SEQUENCE_LENGTH), metadata={"help": "bytes per input window"}
    )
    max_train_bytes: int = attrs.field(
        default=4_000_000, validator=_int_range(1, 1 << 34),
        metadata={"help": "train bytes kept (the first of the train files, in path order); validation and test keep an eighth each"},
    )
    expected_fingerprint: str = attrs.field(
        default="", metadata={"help": "sha256 fingerprint the corpus must have ('' accepts any and shows it)"}
    )
    root: str = attrs.field(
        default="", metadata={"help": "directory to read instead of the running Python's standard library"}
    )


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def source_files(root: Path) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of every corpus file under ``root``, sorted by relative path."""
    found = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in relative.parts[:-1]) or not path.is_file():
            continue
        found.append((relative.as_posix(), path))
    return sorted(found)


def split_of(relative: str) -> str:
    """A file's split from its path alone (sha256 bucket), so adding a file never moves another."""
    bucket = hashlib.sha256(relative.encode("utf-8")).digest()[0] % 10
    return "test" if bucket == TEST_BUCKET else "val" if bucket == VAL_BUCKET else "train"


class PySourceTask:
    def __init__(self, options: PySourceOptions) -> None:
        self.options = options

    def _root(self) -> Path:
        return Path(self.options.root).expanduser() if self.options.root else stdlib_root()

    def available(self, data_dir: Path) -> bool:
        return self._root().is_dir()

    def load(self, data_dir: Path, device: torch.device, seed: int) -> TaskData:
        root = self._root()
        if not root.is_dir():
            raise DatasetNotFoundError(f"pysource task: source directory {root} does not exist (task.options.root)")
        documents = []
        for relative, path in source_files(root):
            try:
                documents.append((relative, path.read_bytes()))
            except OSError as error:
                raise DatasetFormatError(f"pysource task: cannot read {path}: {error}") from None
        if not documents:
            raise DatasetNotFoundError(f"pysource task: no .py files under {root} (task.options.root)")
        found = fingerprint(documents)
        wanted = self.options.expected_fingerprint
        if wanted and wanted != found:
            raise DatasetFormatError(
                f"pysource task: the corpus under {root} ({len(documents)} files, Python {sys.version.split()[0]}) has "
                f"fingerprint {found}, not task.options.expected_fingerprint {wanted}: results would not be comparable. "
                "Use the same Python version, or clear expected_fingerprint to accept this corpus."
            )
        size = sum(len(content) for _, content in documents)
        print(f"pysource: {len(documents)} files, {size / 1e6:.1f} MB under {root}, fingerprint {found}", file=sys.stderr)
        self.fingerprint = found
        by_split: dict[str, list[bytes]] = {"train": [], "val": [], "test": []}
        for relative, content in documents:
            by_split[split_of(relative)].append(content)
        length, budget = self.options.sequence_length, self.options.max_train_bytes
        caps = {"train": budget, "val": max(1, budget // 8), "test": max(1, budget // 8)}
        arrays = {split: windows(by_split[split], length, caps[split]) for split in by_split}
        return byte_task_data("pysource", arrays, length, device)


SPEC = TaskSpec(
    name="pysource",
    description="Byte-level language modelling on the Python standard library's .py files (split by file; bits per byte).",
    factory=PySourceTask,
    options_type=PySourceOptions,
    # Byte sequences (TaskInfo.sequence_length set). Always available (the running Python's own standard
    # library), so ``task.name = "auto"`` on a transformer host picks it; an image task never competes
    # with it there, as auto considers only the tasks that support the host's topology.
    auto_priority=0,
    topologies=frozenset({"transformer"}),
)
