"""The typed events a run emits: what ``events.jsonl`` holds and what ``esper_on_event`` observers receive.

Why typed: every consumer (the events file, ``esper report``, a TensorBoard plugin) reads the same
fields, and a misspelt field is an AttributeError at the emitting line instead of a silently missing
column. Events carry only JSON-able plain values; wall-clock values live only in ``run_*`` events and
in ``metrics.jsonl``'s ``timing`` section, so two runs with the same seed write identical event lines.
They belong to the plugin contract because an observer plugin's input is part of the plugin API.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import attrs


def plain(value: Any) -> Any:
    """JSON-able copy: tuples -> lists, tensors -> numbers/lists, non-finite floats -> None (strict JSON
    readers reject NaN)."""
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # torch tensors, numpy arrays and scalars
        return plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@attrs.frozen(kw_only=True)
class Event:
    """Base of all events; ``type`` names the event in the JSONL record."""

    type: ClassVar[str] = "event"

    def to_record(self) -> dict[str, Any]:
        return {"type": self.type, **plain(attrs.asdict(self, recurse=False))}


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
