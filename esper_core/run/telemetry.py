"""Typed run events, a JSONL sink, and fan-out to the ``esper_on_event`` plugin hook.

Why typed: every consumer (the events file, ``esper report``, a TensorBoard plugin) reads the same
fields, and a misspelt field is an AttributeError at the emitting line instead of a silently missing
column. Events carry only JSON-able plain values; wall-clock values live only in ``run_*`` events and
in ``metrics.jsonl``'s ``timing`` section, so two runs with the same seed write identical event lines.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import IO, Any, Callable, ClassVar, Iterator, Mapping, Protocol, Sequence

import attrs


def _plain(value: Any) -> Any:
    """JSON-able copy: tuples -> lists, tensors -> numbers/lists, non-finite floats -> None (strict JSON
    readers reject NaN)."""
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # torch tensors, numpy arrays and scalars
        return _plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@attrs.frozen(kw_only=True)
class Event:
    """Base of all events; ``type`` names the event in the JSONL record."""

    type: ClassVar[str] = "event"

    def to_record(self) -> dict[str, Any]:
        return {"type": self.type, **_plain(attrs.asdict(self, recurse=False))}


@attrs.frozen(kw_only=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_start"
    run_name: str
    resumed_at_round: int | None  # None for a fresh run
    n_envs: int
    devices: tuple[str, ...]
    plugins: dict[str, str]  # kind -> chosen plugin name
    esper_version: str
    wall_time: float


@attrs.frozen(kw_only=True)
class EpisodeStarted(Event):
    type: ClassVar[str] = "episode_start"
    round: int
    env: int
    episode: int


@attrs.frozen(kw_only=True)
class ActionTaken(Event):
    """One executed action with every head: its index, its value, whether the stored mask allowed it,
    and whether the op makes it relevant."""

    type: ClassVar[str] = "action"
    round: int
    env: int
    episode: int
    step: int
    op: str
    indices: dict[str, int]
    values: dict[str, Any]
    legal: dict[str, bool]
    relevant: tuple[str, ...]
    log_prob: float
    value: float
    ok: bool


@attrs.frozen(kw_only=True)
class SeedTransition(Event):
    type: ClassVar[str] = "seed_transition"
    round: int
    env: int
    episode: int
    step: int
    slot: str
    from_stage: str
    to_stage: str
    reason: str
    blueprint: str | None


@attrs.frozen(kw_only=True)
class RewardGiven(Event):
    type: ClassVar[str] = "reward"
    round: int
    env: int
    episode: int
    step: int
    reward: float
    components: dict[str, float]


@attrs.frozen(kw_only=True)
class StepMetrics(Event):
    """Host training numbers after one env step (one epoch)."""

    type: ClassVar[str] = "step"
    round: int
    env: int
    episode: int
    step: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    host_params: int
    seed_params: int


@attrs.frozen(kw_only=True)
class FaultRecovered(Event):
    """A non-finite host loss: the env was rolled back to its state before the epoch and the seeds
    suspected of causing it were pruned."""

    type: ClassVar[str] = "fault"
    round: int
    env: int
    episode: int
    step: int
    reason: str
    pruned_slots: tuple[str, ...]


@attrs.frozen(kw_only=True)
class EpisodeEnded(Event):
    type: ClassVar[str] = "episode_end"
    round: int
    env: int
    episode: int
    steps: int
    episode_return: float
    final_val_acc: float
    best_val_acc: float
    host_params: int
    seed_params: int
    params_added: int
    germinated: int
    fossilized: int
    pruned: int
    faults: int


@attrs.frozen(kw_only=True)
class PolicyWarning(Event):
    """A learning policy's update flagged a known failure sign (entropy collapse, exploding or frozen
    ratios, constant gradient clipping...). Written as an event so it is seen, not buried in metrics."""

    type: ClassVar[str] = "policy_warning"
    round: int
    message: str


@attrs.frozen(kw_only=True)
class RoundEnded(Event):
    type: ClassVar[str] = "round_end"
    round: int
    env_steps: int
    mean_return: float
    mean_val_acc: float
    action_mix: dict[str, float]


@attrs.frozen(kw_only=True)
class RunInterrupted(Event):
    """SIGINT: the current step finished; the checkpoint of the round start was (re)written."""

    type: ClassVar[str] = "run_interrupted"
    round: int
    step: int
    checkpoint: str


@attrs.frozen(kw_only=True)
class RunEnded(Event):
    type: ClassVar[str] = "run_end"
    status: str
    rounds_completed: int
    wall_time_s: float


#: Event types whose records hold wall-clock values (everything else is reproducible from the seed).
WALL_CLOCK_EVENTS: frozenset[str] = frozenset({RunStarted.type, RunEnded.type, RunInterrupted.type})


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
        self._file.write(json.dumps(_plain(record), separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def tell(self) -> int:
        self.flush()
        return self._file.tell() if self._file is not None else self.path.stat().st_size

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
    """Sends each event to the events file and to the plugin hook; metrics records to the metrics file.

    ``hook`` is ``PluginRegistry.emit`` (or None). Hook failures are the plugin's problem: they are
    reported once per plugin error text through ``on_hook_error`` and never stop the run.
    """

    def __init__(
        self,
        events: JsonlSink | None,
        metrics: JsonlSink | None = None,
        hook: Callable[[dict[str, Any]], Any] | None = None,
        on_hook_error: Callable[[str], None] | None = None,
    ) -> None:
        self.events = events
        self.metrics = metrics
        self._hook = hook
        self._on_hook_error = on_hook_error
        self._reported: set[str] = set()

    def emit(self, event: Event) -> None:
        record = event.to_record()
        if self.events is not None:
            self.events.write(record)
        self._fan_out(record)

    def emit_all(self, events: Sequence[Event]) -> None:
        for event in events:
            self.emit(event)

    def metrics_line(self, record: Mapping[str, Any]) -> None:
        """One line of ``metrics.jsonl``; plugins see it as an event of type ``metrics``."""
        plain = _plain(dict(record))
        if self.metrics is not None:
            self.metrics.write(plain)
        self._fan_out({"type": "metrics", **plain})

    def _fan_out(self, record: dict[str, Any]) -> None:
        if self._hook is None:
            return
        try:
            self._hook(record)
        except Exception as error:  # a broken observer plugin must not stop a run
            text = f"esper_on_event hook failed: {type(error).__name__}: {error}"
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
        for sink in (self.events, self.metrics):
            if sink is not None:
                sink.close()
