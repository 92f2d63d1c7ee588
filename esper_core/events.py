"""The typed events a run emits: what ``events.jsonl`` holds and what ``esper_on_event`` observers receive.

Why typed: every consumer (the events file, ``esper report``, a TensorBoard plugin) reads the same
fields, and a misspelt field is an AttributeError at the emitting line instead of a silently missing
column. Events carry only JSON-able plain values; wall-clock values live only in ``run_*`` events and
in ``metrics.jsonl``'s ``timing`` section, so two runs with the same seed write identical event lines.
They belong to the plugin contract because an observer plugin's input is part of the plugin API.

Every field carries a description (``described``) with its unit or range: ``docs/events.md`` is generated
from them (``python benchmarks/events_doc.py``) and a test keeps it current, so the documented stream and
the emitted one cannot drift apart.
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


def described(text: str) -> Any:
    """An attrs field with its documentation (what it means, its unit or range) in the metadata."""
    return attrs.field(metadata={"doc": text})


def field_docs(cls: type) -> dict[str, str]:
    """``field name -> description`` of an event class (empty text where none was given)."""
    return {field.name: str(field.metadata.get("doc", "")) for field in attrs.fields(cls)}


@attrs.frozen(kw_only=True)
class Event:
    """Base of all events; ``type`` names the event in the JSONL record."""

    type: ClassVar[str] = "event"

    def to_record(self) -> dict[str, Any]:
        return {"type": self.type, **plain(attrs.asdict(self, recurse=False))}


@attrs.frozen(kw_only=True)
class RunStarted(Event):
    """A run (fresh or resumed) begins. The first event an observer sees; it carries everything a sink
    needs to set itself up: where the run directory is and whether rounds are about to be redone."""

    type: ClassVar[str] = "run_start"
    run_name: str = described("name of the run directory (empty when the run writes no files)")
    run_dir: str = described("absolute path of the run directory (empty when the run writes no files); sinks write under it")
    resumed_at_round: int | None = described(
        "None for a fresh run; after `esper resume`, the round the run continues from. Rounds from this one on "
        "may already have reached observers before the interruption: they are replayed exactly, so a sink "
        "drops or overwrites what it recorded for them (TensorBoard: purge_step)"
    )
    n_envs: int = described("environments (host copies) per round")
    devices: tuple[str, ...] = described("torch devices the envs run on")
    plugins: dict[str, str] = described("kind -> chosen plugin name (task, host, policy, reward)")
    config: dict[str, Any] = described("the resolved configuration (as in config.json)")
    esper_version: str = described("installed Esper version")
    wall_time: float = described("Unix time in seconds (wall clock)")


@attrs.frozen(kw_only=True)
class EpisodeStarted(Event):
    """An env starts an episode with a fresh host (episodes start and end together at round boundaries)."""

    type: ClassVar[str] = "episode_start"
    round: int = described("round index, from 0")
    env: int = described("env index, from 0")
    episode: int = described("this env's episode counter, from 0")


@attrs.frozen(kw_only=True)
class ActionTaken(Event):
    """One executed action with every head: its index, its value, whether the stored mask allowed it,
    and whether the op makes it relevant."""

    type: ClassVar[str] = "action"
    round: int = described("round index, from 0")
    env: int = described("env index, from 0")
    episode: int = described("this env's episode counter, from 0")
    step: int = described("env step (host epoch) within the episode, from 0")
    op: str = described("the op: WAIT, GERMINATE, SET_ALPHA_TARGET, PRUNE, FOSSILIZE or ADVANCE")
    indices: dict[str, int] = described("head -> chosen index in that head")
    values: dict[str, Any] = described("head -> the value at that index (slot name, blueprint name, tempo in epochs, ...)")
    legal: dict[str, bool] = described("head -> whether the stored mask allowed the index (always true unless a policy is buggy)")
    relevant: tuple[str, ...] = described("heads that causally matter for this op (the others' advantages are 0)")
    log_prob: float = described("joint log-probability of the relevant heads (nats)")
    value: float = described("the policy's value estimate for the state (0 for non-learning policies)")
    ok: bool = described("false when the step ended in a recovered fault")


@attrs.frozen(kw_only=True)
class SeedTransition(Event):
    """A slot changed lifecycle stage (by an action, a timer, or fault recovery)."""

    type: ClassVar[str] = "seed_transition"
    round: int = described("round index, from 0")
    env: int = described("env index, from 0")
    episode: int = described("this env's episode counter, from 0")
    step: int = described("env step (host epoch) within the episode, from 0")
    slot: str = described("slot name (the host's slot point)")
    from_stage: str = described("stage before (a SeedStage name)")
    to_stage: str = described("stage after (a SeedStage name)")
    reason: str = described("why, in words")
    blueprint: str | None = described("blueprint of the seed in the slot (None when the slot holds none)")


@attrs.frozen(kw_only=True)
class RewardGiven(Event):
    """The reward plugin scored one env step."""

    type: ClassVar[str] = "reward"
    round: int = described("round index, from 0")
    env: int = described("env index, from 0")
    episode: int = described("this env's episode counter, from 0")
    step: int = described("env step (host epoch) within the episode, from 0")
    reward: float = described("the step's reward (null if not finite)")
    components: dict[str, float] = described("component name -> value, as reported by the reward plugin")


@attrs.frozen(kw_only=True)
class StepMetrics(Event):
    """Host training numbers after one env step (one epoch)."""

    type: ClassVar[str] = "step"
    round: int = described("round index, from 0")
    env: int = described("env index, from 0")
    episode: int = described("this env's episode counter, from 0")
    step: int = described("env step (host epoch) within the episode, from 0")
    train_loss: float = described("mean training cross-entropy over the epoch (nats)")
    train_acc: float = described("training accuracy over the epoch, in [0, 1]")
    val_loss: float = described("validation cross-entropy (nats)")
    val_acc: float = described("validation accuracy, in [0, 1]")
    host_params: int = described("parameters of the host, fossilized seeds included")
    seed_params: int = described("parameters of live (not yet fossilized) seeds, blend styles included")


@attrs.frozen(kw_only=True)
class FaultRecovered(Event):
    """A non-finite host loss: the env was rolled back to its state before the epoch and the seeds
    suspected of causing it were pruned."""

    type: ClassVar[str] = "fault"
    round: int = described("round index, from 0")
    env: int = described("env index, from 0")
    episode: int = described("this env's episode counter, from 0")
    step: int = described("env step (host epoch) within the episode, from 0")
    reason: str = described("what went wrong, in words")
    pruned_slots: tuple[str, ...] = described("slots whose seeds were pruned as suspects")


@attrs.frozen(kw_only=True)
class PluginDisabled(Event):
    """A blueprint or blend style broke its contract when the action germinated it (a shape change, a
    factory that raised): the action was refused, the model left as it was, and the plugin is masked out
    for the rest of the run (saved in checkpoints, so a resumed run masks it too)."""

    type: ClassVar[str] = "plugin_disabled"
    round: int = described("round index, from 0")
    env: int = described("env index, from 0")
    episode: int = described("this env's episode counter, from 0")
    step: int = described("env step (host epoch) within the episode, from 0")
    kind: str = described("plugin kind: blueprint or blend_style")
    name: str = described("the plugin's registered name")
    reason: str = described("what it did wrong and what happened, in words")


@attrs.frozen(kw_only=True)
class EpisodeEnded(Event):
    """An env finished its episode: its return and what happened to its seeds."""

    type: ClassVar[str] = "episode_end"
    round: int = described("round index, from 0")
    env: int = described("env index, from 0")
    episode: int = described("this env's episode counter, from 0")
    steps: int = described("env steps (host epochs) in the episode")
    episode_return: float = described("sum of the episode's rewards (undiscounted)")
    final_val_acc: float = described("validation accuracy after the last epoch, in [0, 1]")
    best_val_acc: float = described("best validation accuracy of the episode, in [0, 1]")
    host_params: int = described("host parameters at the end, fossilized seeds included")
    seed_params: int = described("parameters of seeds still live at the end")
    params_added: int = described("host parameters gained this episode (fossilized seeds)")
    germinated: int = described("seeds germinated this episode")
    fossilized: int = described("seeds fossilized this episode")
    pruned: int = described("seeds pruned this episode (faults included)")
    faults: int = described("non-finite losses recovered this episode")


@attrs.frozen(kw_only=True)
class PolicyWarning(Event):
    """A learning policy's update flagged a known failure sign (entropy collapse, exploding or frozen
    ratios, constant gradient clipping...). Written as an event so it is seen, not buried in metrics."""

    type: ClassVar[str] = "policy_warning"
    round: int = described("round index, from 0")
    message: str = described("the warning (see docs/ppo-diagnostics.md for ppo_v2's)")


@attrs.frozen(kw_only=True)
class RoundEnded(Event):
    """A round is over: every env played one episode and the policy was updated."""

    type: ClassVar[str] = "round_end"
    round: int = described("round index, from 0")
    env_steps: int = described("env steps taken this round (envs x episode length)")
    mean_return: float = described("mean episode return over the envs")
    mean_val_acc: float = described("mean final validation accuracy over the envs, in [0, 1]")
    action_mix: dict[str, float] = described("op name -> share of this round's actions, summing to 1")


@attrs.frozen(kw_only=True)
class RunInterrupted(Event):
    """SIGINT: the current step finished; the checkpoint of the round start was (re)written."""

    type: ClassVar[str] = "run_interrupted"
    round: int = described("the interrupted round (resuming replays it from its start)")
    step: int = described("steps of that round that were finished")
    checkpoint: str = described("path of the checkpoint written (empty without a run directory)")


@attrs.frozen(kw_only=True)
class GroupRestarted(Event):
    """Workers holding env groups died mid-round (a Ray actor, ``--backend ray``): they were replaced and
    the round is played again from its start, events and metrics cut back to it. The replay gives the
    results the round would have given; only this event tells it happened."""

    type: ClassVar[str] = "group_restarted"
    round: int = described("the round being replayed, from 0")
    units: tuple[int, ...] = described("device units whose workers were restarted (in device-entry order, from 0)")
    attempt: int = described("replays of this round so far, from 1")
    reason: str = described("what was lost, in words")


@attrs.frozen(kw_only=True)
class RunEnded(Event):
    """The run stops (completed or interrupted); the last event of a run."""

    type: ClassVar[str] = "run_end"
    status: str = described("completed or interrupted")
    rounds_completed: int = described("rounds finished so far, over every session of the run")
    wall_time_s: float = described("wall-clock seconds spent in rounds, over every session of the run")


@attrs.frozen(kw_only=True)
class EvalStarted(Event):
    """``esper eval`` begins: the saved policy plays one deterministic episode per env. Sent to observers
    only; nothing is written to events.jsonl."""

    type: ClassVar[str] = "eval_start"
    run_name: str = described("name of the run directory")
    run_dir: str = described("absolute path of the run directory")
    checkpoint: str = described("path of the checkpoint evaluated")
    round: int = described("rounds completed when the checkpoint was written (the policy's training so far)")
    n_envs: int = described("environments evaluated")
    config: dict[str, Any] = described("the run's resolved configuration")


@attrs.frozen(kw_only=True)
class EvalResult(Event):
    """One env's evaluation: held-out accuracy and the network it grew."""

    type: ClassVar[str] = "eval_result"
    round: int = described("rounds completed when the checkpoint was written")
    env: int = described("env index, from 0")
    episode: int = described("the env's episode counter for the evaluation episode")
    test_acc: float = described("accuracy on the task's held-out test split, in [0, 1]")
    final_val_acc: float = described("validation accuracy after the episode's last epoch, in [0, 1]")
    host_params: int = described("parameters of the grown host, fossilized seeds included")
    seed_params: int = described("parameters of seeds still live at the end")
    params_added: int = described("host parameters gained in the episode (fossilized seeds)")
    fossilized: int = described("seeds fossilized in the episode")
    pruned: int = described("seeds pruned in the episode")
    slots: tuple[dict[str, Any], ...] = described(
        "final morphology, one entry per slot: slot, stage, blueprint, style, alpha, seed_params"
    )


@attrs.frozen(kw_only=True)
class EvalEnded(Event):
    """The evaluation is over (every ``eval_result`` was sent)."""

    type: ClassVar[str] = "eval_end"
    round: int = described("rounds completed when the checkpoint was written")
    mean_test_acc: float = described("mean held-out test accuracy over the envs, in [0, 1]")


@attrs.frozen(kw_only=True)
class ReportWritten(Event):
    """`esper run` / `esper resume` wrote the run's report (``RUN_DIR/report/``) after the run ended; sent to
    observers only (not to ``events.jsonl``), so a sink that takes images can show the report's figures."""

    type: ClassVar[str] = "report_written"
    round: int = described("rounds completed when the report was written (the step of the figures)")
    figures: dict[str, str] = described("figure name -> path of its PNG (empty without matplotlib)")


#: Every event class, in the order a run emits them (``docs/events.md`` lists them in this order).
EVENT_CLASSES: tuple[type[Event], ...] = (
    RunStarted,
    EpisodeStarted,
    ActionTaken,
    SeedTransition,
    FaultRecovered,
    PluginDisabled,
    RewardGiven,
    StepMetrics,
    EpisodeEnded,
    PolicyWarning,
    RoundEnded,
    RunInterrupted,
    GroupRestarted,
    RunEnded,
    EvalStarted,
    EvalResult,
    EvalEnded,
    ReportWritten,
)

#: The record type of a ``metrics.jsonl`` line as observers receive it (not an event class: its
#: ``policy`` section is whatever the policy's update reports).
METRICS_TYPE = "metrics"

#: Event types whose records hold wall-clock values or tell of machine failures (everything else is
#: reproducible from the seed).
WALL_CLOCK_EVENTS: frozenset[str] = frozenset(
    {RunStarted.type, RunEnded.type, RunInterrupted.type, GroupRestarted.type}
)
