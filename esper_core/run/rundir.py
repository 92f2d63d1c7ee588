"""The run directory: where one run keeps its config, events, metrics, checkpoints and summary.

```
runs/<name>/config.json     resolved config, plugins (names, distributions, versions), action layout
runs/<name>/config.toml     the same resolved config as TOML, every plugin option with its help (--config takes it)
runs/<name>/events.jsonl    typed events (esper_core.run.telemetry)
runs/<name>/metrics.jsonl   one line per round: policy update metrics + env stats (+ timing)
runs/<name>/checkpoints/    round_NNNNN.pt, atomic (esper_core.run.checkpoint)
runs/<name>/summary.json    final numbers (also written on interrupt, and on failure with the error)
runs/<name>/report/         plots from ``esper report`` (when matplotlib is installed)
runs/<name>/eval.json       ``esper eval``: test accuracy and final morphology per env
runs/<name>/export/         ``esper export``: round_NNNNN/env<N>/{manifest.json,state_dict.pt} (esper_core.run.export)
runs/<name>/tensorboard/    the tensorboard observer's event files (eval/ for ``esper eval``), when enabled
runs/<name>/wandb/          the wandb observer's local files and esper-wandb.json, when enabled
runs/<name>/.lock           held (flock) by the one process using the run (esper_core.run.lock)
```

Creating a run directory is atomic: making ``checkpoints/`` (``mkdir`` without ``exist_ok``) is the step
that claims it, so of two ``esper run --name x`` started together exactly one gets it. Files are written
to a temporary name, fsynced and renamed; temporaries a killed process left behind (``.NAME.PID.tmp``)
are removed by the next process that holds the run's lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import attrs


#: Longest run name: file systems allow 255 bytes per name, and files inside get prefixes and suffixes.
MAX_NAME_BYTES = 200
#: What an interrupted atomic write leaves behind: ``.NAME.PID.tmp``.
TEMPORARY = re.compile(r"^\..+\.\d+\.tmp$")


class RunDirError(Exception):
    """A run directory is missing, incomplete, or would be overwritten; the message says which path."""


def default_run_name(host: str, policy: str) -> str:
    return f"{host}-{policy}-{time.strftime('%Y%m%d-%H%M%S')}"


def temporary_path(path: Path) -> Path:
    """Where an atomic write of ``path`` goes first (same directory, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """``path`` is either the old file or the complete new one, also after a crash or a full disk."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """``write_json_atomic`` for text that is already written out (a TOML document)."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(handle)`` fills a temporary beside ``path``, which is fsynced and renamed over ``path``: the
    file is the old one or the complete new one, also after a crash or a full disk (whose error names
    ``path``). The one atomic write of run directories, text and checkpoints alike."""
    temporary = temporary_path(path)
    try:
        with temporary.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise with_filename(error, path) from error
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: some file systems cannot open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def with_filename(error: OSError, path: Path) -> OSError:
    """``error`` naming ``path`` when the OS did not say which file (a failed write or fsync does not)."""
    if error.filename is not None or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror or str(error), str(path))


def describe_os_error(error: OSError, what: str) -> str:
    """One sentence for an OS failure while doing ``what``: the path, the reason and what to do."""
    where = f" at {error.filename}" if error.filename else ""
    why = error.strerror or str(error)
    fixes = {
        errno.ENOSPC: "free some space on that disk (or point --run-dir / task.data_dir at another one)",
        errno.EDQUOT: "free some space within your disk quota",
        errno.EROFS: "that file system is read-only: use a writable location",
        errno.EACCES: "you lack permission there: use a directory you own",
        errno.EPERM: "you lack permission there: use a directory you own",
        errno.ENAMETOOLONG: f"use a shorter name (run names take at most {MAX_NAME_BYTES} bytes)",
        errno.ENOTDIR: "a file is in the way where a directory is expected",
        errno.EIO: "the disk reported an I/O error: check the device",
    }
    fix = fixes.get(error.errno or 0, "check the path and try again")
    return f"{what} failed{where}: {why}; {fix}"


@attrs.frozen
class RunDir:
    root: Path = attrs.field(converter=Path)

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def config_toml_path(self) -> Path:
        """Written beside config.json by runs since 0.2; older run directories lack it."""
        return self.root / "config.toml"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def name(self) -> str:
        return self.root.name

    @classmethod
    def create(cls, parent: Path | str, name: str) -> "RunDir":
        """A new, empty run directory, claimed atomically; refuses one that already holds (or starts) a run."""
        if not name or "/" in name or name in {".", ".."}:
            raise RunDirError(f"run name {name!r} must be a single directory name (no '/')")
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise RunDirError(f"run name is {len(name.encode('utf-8'))} bytes long; use at most {MAX_NAME_BYTES} (--name)")
        root = Path(parent) / name
        taken = (
            f"run directory {root} already exists and is not empty; pick another --name, "
            f"or continue it with `esper resume {root}`"
        )
        try:
            root.mkdir(parents=True, exist_ok=True)
            if any(root.iterdir()):
                raise RunDirError(taken)
            (root / "checkpoints").mkdir()  # the atomic claim: of two racing creators only one succeeds
        except FileExistsError as error:
            if root.is_dir():
                raise RunDirError(taken) from None
            raise RunDirError(f"cannot create run directory {root}: {error.filename or root} exists and is not a directory") from None
        except NotADirectoryError:
            raise RunDirError(f"cannot create run directory {root}: a file is in the way (--run-dir {parent})") from None
        except OSError as error:
            raise RunDirError(describe_os_error(error, f"creating run directory {root}")) from None
        return cls(root)

    @classmethod
    def open(cls, path: Path | str) -> "RunDir":
        run = cls(Path(path))
        if not run.root.is_dir():
            what = "is a file, not a run directory" if run.root.exists() else "does not exist"
            raise RunDirError(f"no run directory at {run.root}: it {what}")
        if not run.config_path.is_file():
            raise RunDirError(f"{run.root} is not a run directory: {run.config_path.name} is missing")
        return run

    def discard(self) -> None:
        """Remove what a run that failed before its first checkpoint wrote (only this layout's own files),
        so the name can be used again; the directory itself goes when nothing else is left in it."""
        for path in (self.config_path, self.config_toml_path, self.events_path, self.metrics_path, self.summary_path, self.root / ".lock"):
            path.unlink(missing_ok=True)
        for directory in (self.checkpoints, self.root):
            if directory.is_dir():
                for entry in directory.iterdir():
                    if TEMPORARY.match(entry.name) or (directory == self.checkpoints and entry.suffix == ".pt"):
                        entry.unlink(missing_ok=True)
                try:
                    directory.rmdir()
                except OSError:
                    pass  # something else lives there: leave it

    def check_writable(self) -> None:
        """Fail now, not after an hour of work, if results could not be written here (read-only, no space
        for even a small file, no permission)."""
        probe = temporary_path(self.root / ".write-probe")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, b"esper\n")
            finally:
                os.close(fd)
        except OSError as error:
            raise RunDirError(
                f"run directory {self.root} is not writable ({error.strerror or error}); esper writes its lock, "
                "checkpoints and results there. Free space or fix permissions, or copy the run directory somewhere "
                "writable (cp -r) and use the copy."
            ) from None
        finally:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete ``.NAME.PID.tmp`` files left by a killed process (call only while holding the lock)."""
        removed = []
        for directory in (self.root, self.checkpoints):
            if not directory.is_dir():
                continue
            for entry in directory.iterdir():
                if TEMPORARY.match(entry.name) and entry.is_file():
                    entry.unlink(missing_ok=True)
                    removed.append(entry)
        return removed

    def write_config(self, data: Mapping[str, Any]) -> None:
        write_json_atomic(self.config_path, data)

    def write_config_toml(self, text: str) -> None:
        write_text_atomic(self.config_toml_path, text)

    def read_config(self) -> dict[str, Any]:
        return _read_json(self.config_path)

    def write_summary(self, data: Mapping[str, Any]) -> None:
        write_json_atomic(self.summary_path, data)

    def read_summary(self) -> dict[str, Any] | None:
        return _read_json(self.summary_path) if self.summary_path.is_file() else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise RunDirError(f"{path} is missing") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path} is not valid JSON: {error}") from error
    except OSError as error:
        raise RunDirError(describe_os_error(error, f"reading {path}")) from error
    if not isinstance(data, dict):
        raise RunDirError(f"{path} must hold a JSON object")
    return data
