"""One process at a time per run directory: an exclusive ``flock`` on ``<run>/.lock``.

Why: two ``esper resume`` of one run both cut the files back to the same checkpoint and append their own
rounds, so ``metrics.jsonl`` ends up interleaved (rounds ``0 1 2 4 3 4 5 5``) and every event doubled;
``esper eval`` reading while ``resume`` truncates sees half a file. ``run``, ``resume`` and ``eval`` hold
the lock for their whole life. ``flock`` (Linux, macOS) is released by the kernel when the process dies,
however it dies, so a SIGKILLed run never leaves a stale lock behind; the pid written into the file is
only there to tell the next user who holds it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import TracebackType

from esper_core.run.rundir import RunDirError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; the lock is then advisory only (no-op)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunDirInUseError(RunDirError):
    """Another live process holds the run directory."""


class RunDirLock:
    """``with RunDirLock(root):`` holds the run directory exclusively, or raises ``RunDirInUseError``
    (another process has it) / ``RunDirError`` (the lock file cannot be created: read-only, missing...)."""

    def __init__(self, root: Path | str, command: str = "esper") -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunDirLock":
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunDirError(_cannot_lock(self.root, error)) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = _read_holder(fd)
                os.close(fd)
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirInUseError(
                        f"run directory {self.root} is in use by {holder}; wait for it to finish, or stop it "
                        "(Ctrl-C in its terminal, or kill -INT <pid>: it writes a checkpoint first), then try again"
                    ) from None
                raise RunDirError(_cannot_lock(self.root, error)) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {self.command}\n".encode())
        except OSError:
            pass  # the pid is a courtesy for the next user; the flock is what excludes
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if text and text[0].isdigit():
        what = " ".join(text[1:]) or "esper"
        return f"pid {text[0]} ({what})"
    return "another process"


def _cannot_lock(root: Path, error: OSError) -> str:
    why = error.strerror or str(error)
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"run directory {root} is not writable ({why}); esper writes its lock, checkpoints and results there. "
            "Copy the run directory somewhere writable (cp -r) and use the copy."
        )
    if error.errno == errno.ENOENT:
        return f"no run directory at {root}"
    if error.errno == errno.ENOTDIR:
        return f"{root} is not a directory"
    return f"cannot lock run directory {root}: {why}"
