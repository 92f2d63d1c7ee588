"""Where events and metrics go: a JSONL sink per file and the fan-out to the ``esper_on_event`` plugin hook.

The event classes themselves are part of the plugin contract (``esper_core.events``). A checkpoint
remembers each file's byte size, so a resumed run cuts the files back and continues them exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, Protocol, Sequence

from esper_core.events import Event, plain

class EventSink(Protocol):
    def write(self, record: Mapping[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends one JSON object per line. ``tell()`` (after ``flush``) is what checkpoints remember, so a
    resumed run can cut the file back to exactly the checkpointed point."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"JSONL sink {self.path} is closed")
        self._file.write(json.dumps(plain(record), separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def tell(self) -> int:
        """The size once everything written is on disk (fsync): checkpoints record it, and must never point
        past what a power cut would leave of the file."""
        self.flush()
        if self._file is None:
            return self.path.stat().st_size
        os.fsync(self._file.fileno())
        return self._file.tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def truncate_file(path: Path | str, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (what a checkpoint recorded); a missing file is created empty."""
    path = Path(path)
    if not path.exists():
        if size:
            raise FileNotFoundError(f"{path} is missing but the checkpoint expects {size} bytes of it")
        path.touch()
        return
    actual = path.stat().st_size
    if actual < size:
        raise ValueError(f"{path} has {actual} bytes, fewer than the {size} the checkpoint recorded; was it edited?")
    with path.open("r+b") as handle:
        handle.truncate(size)


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Every complete record of a JSONL file (a torn last line from a killed run is skipped)."""
    return list(iter_jsonl(path))


def iter_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith("\n"):
                return  # torn write at the end of a killed run
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not a JSON object ({error})") from error


class Telemetry:
    """Sends each event to the events file, to the plugin hook and to the run's enabled observers;
    metrics records to the metrics file (and, as type ``metrics``, to the same listeners).

    ``hook`` is ``PluginRegistry.emit`` (or None); ``observers`` the run's ``ObserverSet`` (or None), closed
    with the telemetry. Their failures are the plugins' problem: reported once per error text through
    ``on_hook_error``, they never stop the run.
    """

    def __init__(
        self,
        events: JsonlSink | None,
        metrics: JsonlSink | None = None,
        hook: Callable[[dict[str, Any]], Any] | None = None,
        on_hook_error: Callable[[str], None] | None = None,
        observers: Any = None,
    ) -> None:
        self.events = events
        self.metrics = metrics
        self._hook = hook
        self._observers = observers
        self._on_hook_error = on_hook_error
        self._reported: set[str] = set()

    def emit(self, event: Event) -> None:
        record = event.to_record()
        if self.events is not None:
            self.events.write(record)
        self._fan_out(record)

    def notify(self, event: Event) -> None:
        """Send ``event`` to the observers and the hook only (nothing is written to ``events.jsonl``): for
        what happens around a run rather than in it, which a resumed run's files must not repeat."""
        self._fan_out(event.to_record())

    def emit_all(self, events: Sequence[Event]) -> None:
        for event in events:
            self.emit(event)

    def metrics_line(self, record: Mapping[str, Any]) -> None:
        """One line of ``metrics.jsonl``; plugins see it as an event of type ``metrics``."""
        values = plain(dict(record))
        if self.metrics is not None:
            self.metrics.write(values)
        self._fan_out({"type": "metrics", **values})

    def _fan_out(self, record: dict[str, Any]) -> None:
        if self._hook is not None:
            self._guarded("esper_on_event hook failed", self._hook, record)
        if self._observers is not None:
            self._guarded("observer failed", self._observers.emit, record)

    def _guarded(self, what: str, call: Callable[[dict[str, Any]], Any], record: dict[str, Any]) -> None:
        try:
            call(record)
        except Exception as error:  # a broken observer plugin must not stop a run
            self._report(f"{what}: {type(error).__name__}: {error}")

    def _report(self, text: str) -> None:
        if text not in self._reported:
            self._reported.add(text)
            if self._on_hook_error is not None:
                self._on_hook_error(text)

    def offsets(self) -> dict[str, int]:
        """Byte sizes of the files after flushing (saved in checkpoints)."""
        return {
            "events": self.events.tell() if self.events is not None else 0,
            "metrics": self.metrics.tell() if self.metrics is not None else 0,
        }

    def flush(self) -> None:
        for sink in (self.events, self.metrics):
            if sink is not None:
                sink.flush()

    def close(self) -> None:
        """Close the files, then the observers (each once: a second close does nothing)."""
        for sink in (self.events, self.metrics):
            if sink is not None:
                sink.close()
        if self._observers is not None:
            self._guarded("observer failed to close", lambda _: self._observers.close(), {})
