"""The run loop: envs -> one batched policy forward -> legal actions -> env steps -> rollout -> update.

A round is one episode in every env followed by one policy update, then metrics, events and (every
``run.checkpoint_every`` rounds) a checkpoint. Episodes start and end at round boundaries, so a checkpoint
written there holds no host tensors: policy state, RNG states, each env's generators and episode counter,
cumulative totals and the byte sizes of the events/metrics files (a resumed run cuts them back to that
point and continues bit for bit).

Every sampled action is checked against the masks it was sampled under *and* against the masks of the
env's actual state before anything executes; an illegal action raises ``IllegalActionError`` (a bug in a
policy), it is never turned into WAIT. SIGINT finishes the current step, rewrites the checkpoint of the
round start (the partial round is discarded, so resuming replays it exactly) and returns cleanly.

The envs are reached only through an ``EnvBackend`` (``run.backend``: in this process, or Ray actors). When
a backend loses a worker mid-round (``EnvGroupsLost``), the round is replayed from its start: the workers
are replaced, everything is restored from the round-start payload (the files cut back to it), a
``group_restarted`` event is written, and the round runs again, with the same results.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from typing import Any, Iterator, Sequence

import attrs
import torch

import esper_core
from esper_core.run.checkpoint import (
    CheckpointError,
    check_compatible,
    checkpoint_path,
    remove_old_checkpoints,
    save_checkpoint,
    tensors_to_cpu,
    version_changes,
)
from esper_core.config.sections import EsperConfig
from esper_core.run.backend import BackendFactory, EnvBackend, EnvGroupsLost, LocalBackend
from esper_core.run.env import StepResult
from esper_core.run.legality import check_legal
from esper_core.run.progress import Progress
from esper_core.records import DecodedAction, EnvObservation, PolicyOutput
from esper_core.rl.rollout import RolloutBuffer
from esper_core.run.metrics import action_mix, episode_records, round_metrics, step_events
from esper_core.run.config_document import config_toml, describe_config
from esper_core.run.setup import ResolvedTask, RunParts, build_run
from esper_core.run.rundir import RunDir
from esper_core.run.seeding import capture_rng_state, restore_rng_state
from esper_core.events import (
    EpisodeStarted, GroupRestarted, PolicyWarning, RoundEnded, RunEnded, RunInterrupted, RunStarted,
)
from esper_core.run.telemetry import JsonlSink, Telemetry, truncate_file


#: Times one round may be replayed after losing env workers before the run gives up.
MAX_ROUND_REPLAYS = 3


def config_dict(config: EsperConfig) -> dict[str, Any]:
    from esper_core.config.loading import config_to_dict

    return config_to_dict(config)


@attrs.frozen
class RunOutcome:
    status: str  # "completed" or "interrupted"
    rounds_completed: int
    summary: dict[str, Any]


class _StopFlag:
    """Set by the SIGINT handler; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def sigint_finishes_step(flag: _StopFlag) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    # SIGTERM (a scheduler's or `kill`'s stop) is handled like Ctrl-C: finish the step, checkpoint, exit.
    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, was in previous.items():
            signal.signal(number, was)


class Runner:
    """Plays the rounds of a run built by ``build_run`` (``Runner.build`` does both): ``run(rounds)``."""

    def __init__(
        self, parts: RunParts, *, run_dir: RunDir | None = None, progress: Progress | None = None,
        backend: EnvBackend | None = None,
    ) -> None:
        self.parts = parts
        self.config = parts.config
        self.registry = parts.registry
        self.run_dir = run_dir
        self.progress = progress if progress is not None else Progress(quiet=True)
        self.devices = parts.devices
        self.task = parts.task
        self.data = parts.data
        #: The task's declared metric: config.json records it and the progress lines are labelled by it.
        self.metric = next(iter(parts.data.values())).info.metric
        self.progress.metric = self.metric
        self.host_spec = parts.host_spec
        self.envs = parts.envs
        self.groups = parts.groups
        self.backend: EnvBackend = backend if backend is not None else LocalBackend(parts)
        self.space = parts.space
        self.policy_spec = parts.policy_spec
        self.policy = parts.policy
        self.policy_device = parts.policy_device
        self.plugins = parts.plugins
        self.buffer: RolloutBuffer | None = None
        self.round = 0
        self.totals: dict[str, Any] = {
            "env_steps": 0, "germinated": 0, "fossilized": 0, "pruned": 0, "faults": 0, "wall_time_s": 0.0,
            "last_episode": [],
        }
        self.telemetry = Telemetry(None)
        self._stop = _StopFlag()
        self._round_start_payload: dict[str, Any] | None = None
        self._policy_state: Any = None
        self._step_index = 0
        self._replays = 0  # of the current round, after lost env workers

    @classmethod
    def build(
        cls,
        config: EsperConfig,
        registry: Any,
        *,
        run_dir: RunDir | None = None,
        progress: Progress | None = None,
        resolved_task: ResolvedTask | None = None,
        backend: BackendFactory | None = None,
    ) -> "Runner":
        """``build_run`` then a runner over it: what every command and most tests want. ``backend`` builds
        where the envs run (``run.backend.choose_backend``; default: in this process)."""
        progress = progress if progress is not None else Progress(quiet=True)
        parts = build_run(config, registry, resolved_task=resolved_task, notice=progress.notice)
        return cls(parts, run_dir=run_dir, progress=progress, backend=None if backend is None else backend(parts))

    # ------------------------------------------------------------------------------------ run directory
    def describe(self) -> dict[str, Any]:
        """What config.json holds: resolved config, plugins with provenance, action-space layout."""
        return {
            "esper_version": esper_core.__version__,
            "config": config_dict(self.config),
            "task": self.task.spec.name,
            "metric": self.metric.to_dict(),
            "devices": [str(d) for d in self.devices],
            "plugins": self.plugins,
            "action_layout": self.space.layout(),
            "policy_learns": bool(self.policy_spec.learns),
        }

    def config_toml(self) -> str:
        """What config.toml holds: the config as `esper config show` prints it, so --config reruns the run."""
        view = describe_config(self.config, self.registry)
        return config_toml(view, f"esper run {self.run_dir.name if self.run_dir else ''}: its resolved configuration; "
                           "esper run --config THIS_FILE runs it again", self.registry)

    def use_run_dir(self, run_dir: RunDir) -> None:
        """Where files go (set before ``start`` or ``restore``; without one nothing is written)."""
        self.run_dir = run_dir

    def _open_telemetry(self) -> None:
        if self.run_dir is None:
            self.telemetry = Telemetry(
                None, hook=getattr(self.registry, "emit", None), on_hook_error=self.progress.notice,
                observers=self.parts.observers,
            )
            return
        self.telemetry = Telemetry(
            JsonlSink(self.run_dir.events_path),
            JsonlSink(self.run_dir.metrics_path),
            hook=getattr(self.registry, "emit", None),
            on_hook_error=self.progress.notice,
            observers=self.parts.observers,
        )

    def start(self) -> None:
        """A fresh run: write config.json and config.toml, the run_start event and the round-0 checkpoint."""
        if self.run_dir is not None:
            self.run_dir.write_config(self.describe())
            self.run_dir.write_config_toml(self.config_toml())
        self._open_telemetry()
        self._emit_run_start(None)
        self._checkpoint(force=True)

    def restore(
        self, payload: dict[str, Any], path: str = "checkpoint", *, announce: bool = True, any_device: bool = False
    ) -> None:
        """Continue from a round-boundary checkpoint (compatibility checked first, with a clear diff).

        ``announce``: send ``run_start`` (resumed_at_round) to the events file and observers; False when the
        state is only read back to evaluate or export (``esper eval`` sends ``eval_start`` instead).
        ``any_device``: envs may sit on another kind of device than when the checkpoint was written (an
        evaluation elsewhere); their generators then start afresh, since generator states do not carry over."""
        check_compatible(path, payload, self.space.layout(), self.plugins)
        if len(payload["envs"]) != len(self.envs):
            raise ValueError(f"{path} holds {len(payload['envs'])} env(s); this run has {len(self.envs)} (run.envs)")
        saved_kinds = [torch.device(d).type for d in payload.get("devices", [])]
        devices = self.backend.env_devices()
        kinds = [torch.device(d).type for d in devices]
        moved = bool(saved_kinds) and saved_kinds != kinds
        if moved and not any_device:
            raise CheckpointError(
                f"{path} was written with envs on {payload['devices']}; this run would put them on "
                f"{devices}. Env generators only resume on the same kind of "
                "device: set device.device / --devices to match."
            )
        for warning in version_changes(payload, self.plugins):
            self.progress.notice(f"warning: {warning}")
        self.policy.load_state_dict(payload["policy"])
        states = list(payload["envs"])
        if moved:
            fresh = self.backend.state_dicts()
            states = [
                {**state, "generator": new["generator"], "init_generator": new["init_generator"]}
                for state, new in zip(states, fresh)
            ]
        self.backend.load_state_dicts(states)
        self.round = int(payload["round"])
        self.totals = dict(payload["totals"])
        restore_rng_state(payload["rng"])
        if self.run_dir is not None:
            truncate_file(self.run_dir.events_path, int(payload["offsets"]["events"]))
            truncate_file(self.run_dir.metrics_path, int(payload["offsets"]["metrics"]))
        self._open_telemetry()
        if announce:
            self._emit_run_start(self.round)
        self._round_start_payload = None
        self._round_start_payload = self.payload()

    def _emit_run_start(self, resumed_at: int | None) -> None:
        self.telemetry.emit(
            RunStarted(
                run_name=self.run_dir.name if self.run_dir is not None else "",
                run_dir=str(self.run_dir.root.resolve()) if self.run_dir is not None else "",
                resumed_at_round=resumed_at,
                n_envs=len(self.envs),
                devices=tuple(str(d) for d in self.devices),
                plugins={"task": self.task.spec.name, "host": self.host_spec.name, "policy": self.policy_spec.name,
                         "reward": self.config.reward.name},
                config=config_dict(self.config),
                esper_version=esper_core.__version__,
                wall_time=time.time(),
            )
        )

    # ----------------------------------------------------------------------------------------- payload
    def payload(self) -> dict[str, Any]:
        """Round-boundary state as tensors/plain values (loadable with ``weights_only=True``)."""
        self.telemetry.flush()
        return {
            "round": self.round,
            "esper_version": esper_core.__version__,
            "config": config_dict(self.config),
            "plugins": self.plugins,
            "action_layout": self.space.layout(),
            "policy_name": self.policy_spec.name,
            "policy": tensors_to_cpu(self.policy.state_dict()),
            "rng": capture_rng_state(),
            "envs": [tensors_to_cpu(state) for state in self.backend.state_dicts()],
            "devices": self.backend.env_devices(),
            "totals": _plain_copy(self.totals),
            "offsets": self.telemetry.offsets(),
        }

    def _checkpoint(self, force: bool = False) -> None:
        payload = self.payload()
        self._round_start_payload = payload
        every = max(1, self.config.run.checkpoint_every)
        if self.run_dir is not None and (force or self.round % every == 0):
            save_checkpoint(checkpoint_path(self.run_dir.checkpoints, self.round), payload)
            if self.config.run.keep_checkpoints:  # 0: keep every one
                remove_old_checkpoints(self.run_dir.checkpoints, self.config.run.keep_checkpoints)

    # ------------------------------------------------------------------------------------------- loop
    def run(self, rounds: int) -> RunOutcome:
        """Play ``rounds`` more rounds (or until SIGINT). Returns the outcome and writes summary.json."""
        clock = time.perf_counter()
        target = self.round + rounds
        status = "completed"
        self.progress.begin(self.round, target, self.config.run.episode_length)
        if self._round_start_payload is None:  # a replay after lost env workers starts from here
            self._round_start_payload = self.payload()
        with sigint_finishes_step(self._stop):
            while self.round < target:
                try:
                    played = not self._stop.requested and self._run_round()
                except EnvGroupsLost as lost:
                    self._replay_round(lost)
                    continue
                except BaseException as error:
                    self._write_failed_summary(error)
                    raise
                if not played:
                    status = "interrupted"
                    break
                self._replays = 0
                self.round += 1
                clock = self._count_wall_time(clock)  # before the checkpoint: a resumed run adds to it
                self._checkpoint(force=self.round == target)
        # No count after the loop: wall_time_s is the time of the rounds the checkpoints hold, so a resumed
        # run adds to exactly what this summary says (the last checkpoint's write and a discarded partial
        # round used to be counted here and then lost on resume, so the total could shrink across a resume).
        if status == "interrupted":
            self._write_interrupt_checkpoint()
        self.telemetry.emit(RunEnded(status=status, rounds_completed=self.round, wall_time_s=self.totals["wall_time_s"]))
        summary = self.summary(status)
        if self.run_dir is not None:
            self.run_dir.write_summary(summary)
        self.telemetry.flush()
        return RunOutcome(status=status, rounds_completed=self.round, summary=summary)

    def _count_wall_time(self, since: float) -> float:
        """Add the seconds since ``since`` to the run's total wall time; returns now."""
        now = time.perf_counter()
        self.totals["wall_time_s"] = float(self.totals["wall_time_s"]) + now - since
        return now

    def close(self) -> None:
        """Close the events and metrics files and the backend (the runner cannot write afterwards)."""
        self.telemetry.close()
        self.backend.close()

    def _replay_round(self, lost: EnvGroupsLost) -> None:
        """Env workers died mid-round: replace them, restore everything from the round start (files cut
        back to it) and let the loop play the round again. Everything is seeded, so the replay gives the
        results the round would have given; only a ``group_restarted`` event tells it happened."""
        payload = self._round_start_payload
        self._replays += 1
        if payload is None or self._replays > MAX_ROUND_REPLAYS:
            raise RuntimeError(
                f"round {self.round}: env workers were lost {self._replays} time(s) ({lost}); giving up. "
                f"Continue later with `esper resume` from the last checkpoint."
            ) from lost
        restarted = self.backend.recover()
        for sink in (self.telemetry.events, self.telemetry.metrics):  # restore reopens them, cut back
            if sink is not None:
                sink.close()
        wall_time = self.totals["wall_time_s"]
        self.restore(payload, announce=False)
        self.totals["wall_time_s"] = wall_time  # the lost attempt took real time
        self.telemetry.emit(GroupRestarted(round=self.round, units=restarted, attempt=self._replays, reason=str(lost)))
        self.progress.notice(f"round {self.round}: lost env worker(s) {list(restarted)} restarted; replaying the round")

    def request_stop(self) -> None:
        """What SIGINT does: finish the current step, then stop at the round start's checkpoint."""
        self._stop.requested = True

    def _write_interrupt_checkpoint(self) -> None:
        payload = self._round_start_payload
        where = ""
        if self.run_dir is not None and payload is not None:
            where = str(save_checkpoint(checkpoint_path(self.run_dir.checkpoints, int(payload["round"])), payload))
        self.telemetry.emit(RunInterrupted(round=self.round, step=self._step_index, checkpoint=where))
        self.progress.notice(
            f"interrupted: stopped after step {self._step_index} of round {self.round}; "
            f"checkpoint at the start of that round: {where or '(no run directory)'}"
        )

    def _run_round(self) -> bool:
        """One episode in every env, then the policy update. False when SIGINT stopped it mid-round."""
        round_index, length, n_envs = self.round, self.config.run.episode_length, len(self.envs)
        started = time.perf_counter()
        observations = self._reset_envs()
        for env in self.backend.facts():
            self.telemetry.emit(EpisodeStarted(round=round_index, env=env.index, episode=env.episode))
        # Episodes end together at the round's end, where the state was reset (resume: a fresh state).
        state = self._policy_state if self._policy_state is not None else self.policy.initial_state(n_envs)
        returns = [0.0] * n_envs
        ops: Counter[str] = Counter()
        act_time = 0.0
        self._step_index = 0
        for step in range(length):
            tick = time.perf_counter()
            output = self.policy.act(observations, state, deterministic=False)
            act_time += time.perf_counter() - tick
            legal = check_legal(output, observations, self.space, self.config.lifecycle)
            decoded = self.space.decode_batch(output.actions)
            if step == 0 and self.buffer is None:
                self.buffer = self._make_buffer(output)
            if step == 0:
                self.buffer.clear()
                self.buffer.set_initial_state(_state_tensors(state))
            results = self._step_envs(decoded)
            done = step == length - 1
            rewards = [r.reward for r in results]
            self._store(step, output, rewards, done)
            self.telemetry.emit_all(
                step_events(round_index, step, self.backend.facts(), self.space, output, decoded, legal, results)
            )
            for i, result in enumerate(results):
                returns[i] += result.reward
            ops.update(a.op.name for a in decoded)
            state = output.state
            if done:
                state = self.policy.reset_state(state, torch.ones(n_envs, dtype=torch.bool, device=self.policy_device))
                self._policy_state = state
            observations = [r.observation for r in results]
            self._step_index = step + 1
            self.telemetry.flush()  # one write per step: tail -f events.jsonl follows the run
            elapsed = time.perf_counter() - started
            self.progress.step(
                round_index, step + 1, length, n_envs * (step + 1) / max(elapsed, 1e-9),
                sum(o.val_acc for o in observations) / n_envs, action_mix(ops),
            )
            if self._stop.requested and not done:
                return False
        records, episode_events = episode_records(round_index, self.backend.facts(), returns, observations, length)
        self.telemetry.emit_all(episode_events)
        for key in ("germinated", "fossilized", "pruned", "faults"):
            self.totals[key] = int(self.totals[key]) + sum(r[key] for r in records)
        self.totals["env_steps"] = int(self.totals["env_steps"]) + n_envs * length
        self.totals["last_episode"] = records
        update_started = time.perf_counter()
        policy_metrics: dict[str, Any] = {}
        if self.policy_spec.learns:
            assert self.buffer is not None
            # The policy validates the rollout and computes its own returns (GAE or otherwise): the
            # runner hands over what happened, the algorithm decides how to learn from it.
            policy_metrics = dict(self.policy.update(self.buffer))
        update_time = time.perf_counter() - update_started
        round_time = time.perf_counter() - started
        metrics = round_metrics(
            round_index, self.totals["env_steps"], records, length, ops, policy_metrics, round_time, act_time, update_time
        )
        self.telemetry.metrics_line(metrics)
        for message in policy_metrics.get("warnings", ()):
            self.telemetry.emit(PolicyWarning(round=round_index, message=str(message)))
        self.telemetry.emit(
            RoundEnded(
                round=round_index, env_steps=n_envs * length, mean_return=metrics["env"]["mean_return"],
                mean_val_acc=metrics["env"]["mean_final_val_acc"], action_mix=metrics["env"]["action_mix"],
            )
        )
        self.progress.round_done(round_index, metrics)
        return True

    # ------------------------------------------------------------------------------------- acting
    def _make_buffer(self, output: PolicyOutput) -> RolloutBuffer:
        features = output.features
        obs_dim = 0 if features is None else int(features.shape[-1])
        return RolloutBuffer(
            self.config.run.episode_length, len(self.envs), obs_dim, self.space.head_sizes, self.policy_device
        )

    def _store(self, step: int, output: PolicyOutput, rewards: list[float], done: bool) -> None:
        assert self.buffer is not None
        n_envs = len(self.envs)
        device = self.policy_device
        features = output.features if output.features is not None else torch.zeros(n_envs, 0, device=device)
        self.buffer.add(
            step,
            obs=features,
            actions=output.actions,
            log_probs=output.log_probs,
            masks=output.masks,
            values=output.value,
            rewards=torch.tensor(rewards, dtype=torch.float32, device=device),
            dones=torch.full((n_envs,), done, dtype=torch.bool, device=device),
        )

    def _reset_envs(self) -> list[EnvObservation]:
        """Fresh hosts for a new episode in every env (``EnvBackend.reset``)."""
        return self.backend.reset()

    def _step_envs(self, actions: Sequence[DecodedAction]) -> list[StepResult]:
        """Every env's epoch, validation and scoring (``EnvBackend.step``; ``env_unit`` says how)."""
        return self.backend.step(actions)

    # ------------------------------------------------------------------------------------- telemetry
    # ----------------------------------------------------------------------------------------- summary
    def summary(self, status: str, totals: dict[str, Any] | None = None) -> dict[str, Any]:
        totals = self.totals if totals is None else totals
        return {
            "status": status,
            "rounds_completed": self.round,
            "rounds_planned": self.config.run.rounds,
            "env_steps": totals["env_steps"],
            "wall_time_s": totals["wall_time_s"],
            "task": self.task.spec.name,
            "host": self.host_spec.name,
            "policy": self.policy_spec.name,
            "seeds": {k: totals[k] for k in ("germinated", "fossilized", "pruned", "faults")},
            "last_episode": totals["last_episode"],
        }

    def _write_failed_summary(self, error: BaseException) -> None:
        """A round that raised leaves summary.json true: status ``failed`` (``interrupted`` for Ctrl-C), the
        error, and the totals at the start of the failed round (its partial counts are discarded, as a
        resume replays it). Why: a run that died used to keep
        the summary of an earlier stop, which named rounds and totals the run had long passed."""
        if self.run_dir is None:
            return
        start = self._round_start_payload
        totals = start["totals"] if start is not None else self.totals
        interrupted = isinstance(error, KeyboardInterrupt)
        summary = self.summary("interrupted" if interrupted else "failed", totals)
        if not interrupted:
            summary["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
        try:
            self.run_dir.write_summary(summary)
        except OSError:
            pass  # the original error matters more than a summary that cannot be written

    # -------------------------------------------------------------------------------------------- eval
    def evaluate(self) -> list[dict[str, Any]]:
        """One deterministic episode per env with the current policy, no learning, no files written;
        returns per env the final validation accuracy and the held-out test accuracy. Local envs only
        (it reads each env's model): `esper eval` never uses another backend."""
        if not isinstance(self.backend, LocalBackend):
            raise RuntimeError("evaluate() reads the envs' models: build the runner with the local backend")
        observations = self._reset_envs()
        state = self.policy.initial_state(len(self.envs))
        for _ in range(self.config.run.episode_length):
            output = self.policy.act(observations, state, deterministic=True)
            check_legal(output, observations, self.space, self.config.lifecycle)
            results = self._step_envs(self.space.decode_batch(output.actions))
            observations = [r.observation for r in results]
            state = output.state
        rows = []
        for env, obs in zip(self.envs, observations):
            rows.append({
                "env": env.index,
                "final_val_acc": obs.val_acc,
                "test_acc": env.evaluate_split(env.data.test_x, env.data.test_y),
                "params_added": env.params_added,
                "fossilized": env.stats.fossilized,
                "pruned": env.stats.pruned,
            })
        return rows


def _state_tensors(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state
    if isinstance(state, (tuple, list)) and all(isinstance(s, torch.Tensor) for s in state):
        return tuple(state)
    return None


def _plain_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(v) for v in value]
    return value
