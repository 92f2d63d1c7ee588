"""MorphogenesisEnv: one host, wrapped in a MorphogeneticModel with its GrowthOptimizer, on one task.

One env step = execute the (legal) action, train the host one epoch (``training.epoch_samples`` samples,
the same whatever the number of envs), validate, measure seed contributions counterfactually, advance the
lifecycle clock (``step_epoch``), observe, and score the step with the reward plugin: r_t is the
consequence of a_t (``RewardInputs(before, action, after, transitions, done)``).

Why the step comes in phases (``begin_step`` -> ``train_batch``* -> ``launch_validation`` ->
``finish_step``): the runner interleaves the batches of several envs on one device (or spread over several)
so no device idles while Python prepares the next env's work. ``step`` runs the phases back to back.

Performance rules: data stays on the device as uint8 (TaskData tensors, ``epoch_batches`` indices,
device-side augmentation); no DataLoader; bf16 autocast and channels_last on CUDA; losses and correct
counts accumulate on the device and are read once, after validation.

Fault handling (``esper_core.run.faults``): before training, the env keeps a copy of the model and
optimiser tensors (the morphology cannot change during an epoch). A non-finite training or validation loss restores that copy, prunes the
seeds suspected of causing it at once, re-validates and reports the fault in ``StepInfo``.

Episodes start at round boundaries with a fresh host (initialised from ``(seed, episode)``), so a
checkpoint at a round boundary needs no host tensors: only the env's generators and episode counter.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Mapping

import attrs
import torch
import torch.nn.functional as F

from esper_core.config.sections import EsperConfig
from esper_core.growth.counterfactual import SlotContribution, contributions, growth_switched_off
from esper_core.data import epoch_batches
from esper_core.run.faults import SharedSnapshot, check_fault_streak, recover, take_snapshot
from esper_core.run.quarantine import PluginQuarantine
from esper_core.run.seeding import derived_seed, forked_rng
from esper_core.growth.lifecycle import LifecycleError
from esper_core.growth.model import MorphogeneticModel
from esper_core.ops import Op
from esper_core.records import DecodedAction, EnvObservation, RewardInputs, StageTransition, TaskData
from esper_core.specs import HostSpec
from esper_core.stages import SeedStage


class IllegalActionError(RuntimeError):
    """The runner or a policy let an illegal action through: always a bug, never turned into WAIT."""


@attrs.frozen(kw_only=True)
class StepInfo:
    """What happened in a step besides the observation and reward (the runner turns it into events)."""

    transitions: tuple[StageTransition, ...]
    action_ok: bool
    fault: str | None = None
    fault_pruned: tuple[str, ...] = ()
    contributions: dict[str, float] = attrs.field(factory=dict)
    #: ``(kind, name, reason)`` when the action was refused because that plugin broke its contract.
    disabled: tuple[str, str, str] | None = None


@attrs.frozen(kw_only=True)
class StepResult:
    observation: EnvObservation
    reward: float
    components: dict[str, float]
    done: bool
    info: StepInfo


@attrs.frozen
class EpisodeStats:
    """Counts for the episode summary, updated from the transitions each step."""

    germinated: int = 0
    fossilized: int = 0
    pruned: int = 0
    faults: int = 0

    def after(self, transitions: tuple[StageTransition, ...], fault: bool) -> "EpisodeStats":
        to = [t.to_stage for t in transitions]
        return EpisodeStats(
            germinated=self.germinated + to.count(SeedStage.GERMINATED),
            fossilized=self.fossilized + to.count(SeedStage.FOSSILIZED),
            pruned=self.pruned + to.count(SeedStage.PRUNED),
            faults=self.faults + int(fault),
        )


def autocast_context(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class MorphogenesisEnv:
    """Create once, ``reset()`` at every episode start (a fresh host; data, generators, reward reused)."""

    def __init__(
        self,
        task_data: TaskData,
        host_spec: HostSpec,
        config: EsperConfig,
        registry: Any,
        device: torch.device | str,
        seed: int,
        *,
        host_options: Any,
        reward: Any,
        index: int = 0,
        quarantine: PluginQuarantine | None = None,
        channels_last: bool | None = None,
    ) -> None:
        self.data = task_data
        self.host_spec = host_spec
        self.config = config
        self.device = torch.device(device)
        self.seed = int(seed)
        self.index = index
        self.episode_length = config.run.episode_length
        self.host_options = host_options
        self.reward = reward
        # A reward that credits growth against the same network with its seeds switched off asks for that
        # measurement (EnvObservation.val_acc_without_growth); others do not pay its validation pass.
        self.measures_growth = bool(getattr(reward, "measures_growth", False))
        self._val_acc_without_growth: float | None = None
        # Blueprints / styles disabled after breaking their contract (shared by the run's envs).
        self.quarantine = quarantine if quarantine is not None else PluginQuarantine()
        self._faulted_steps = 0  # consecutive steps ending in a non-finite loss, across episodes
        self.blueprints = dict(registry.specs("blueprint"))
        self.styles = dict(registry.specs("blend_style"))
        cuda = self.device.type == "cuda"
        self.bf16 = cuda and config.device.bf16
        # channels_last: the config's device.channels_last unless the run setup decides (fused groups: NCHW)
        wants_channels_last = config.device.channels_last if channels_last is None else channels_last
        self.memory_format = torch.channels_last if cuda and wants_channels_last else torch.contiguous_format
        training = config.training
        self.train_samples = training.epoch_samples if training.epoch_samples is not None else task_data.train_x.shape[0]
        if self.train_samples < 1:
            raise ValueError(f"training.epoch_samples must be >= 1; got {training.epoch_samples}")
        n_val = task_data.val_x.shape[0]
        self.val_count = n_val if training.val_samples is None else min(n_val, training.val_samples)
        if self.val_count < 1:
            raise ValueError(f"the validation split is empty (training.val_samples={training.val_samples})")
        channels = len(task_data.mean)
        mean = torch.tensor(task_data.mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        std = torch.tensor(task_data.std, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self._scale = 1.0 / (std * 255.0)
        self._shift = -mean / std
        self.metric = task_data.info.metric  # the task's declared metric; ``*_acc`` numbers are its score
        # Targets per validation sample: 1 for a label, one per position for a sequence.
        self._val_targets = task_data.val_y[: self.val_count].numel()
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(derived_seed(self.seed, 1))
        self._init_generator = torch.Generator()
        self._init_generator.manual_seed(derived_seed(self.seed, 2))
        self.episode = -1
        self.model: MorphogeneticModel | None = None
        self._pending: dict[str, Any] | None = None
        # Set by a fused group: its copy of the wide tensors, which this env's fault snapshots view.
        self.shared_snapshot: Callable[[], SharedSnapshot] | None = None
        self._observation: EnvObservation | None = None
        self.stats = EpisodeStats()

    # ------------------------------------------------------------------------------------------ helpers
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float features (same values as ``TaskData.normalise``, constants cached on the device);
        a task with its own ``encode`` (e.g. token ids) is left to it."""
        if self.data.encode is not None:
            return self.data.encode(x)
        return (x.float() * self._scale + self._shift).contiguous(memory_format=self.memory_format)

    @property
    def slot_names(self) -> tuple[str, ...]:
        return self._require_model().slot_names

    @property
    def topology(self) -> str:
        return self._require_model().topology

    @property
    def observation(self) -> EnvObservation:
        if self._observation is None:
            raise RuntimeError("call reset() before observing the env")
        return self._observation

    def _require_model(self) -> MorphogeneticModel:
        if self.model is None:
            raise RuntimeError("the env has no model yet; call reset() first")
        return self.model

    # -------------------------------------------------------------------------------------------- reset
    def build_model(self, episode: int) -> MorphogeneticModel:
        """A fresh host from ``(seed, episode)``, on the device, wrapped with its slots and optimiser."""
        with forked_rng(derived_seed(self.seed, 3, episode), self.device):
            host = self.host_spec.factory(self.host_options, self.data.info)
        host = host.to(self.device)
        if self.memory_format == torch.channels_last:
            host = host.to(memory_format=torch.channels_last)
        return MorphogeneticModel(host, self.blueprints, self.styles, self.config.lifecycle, self.config.training)

    def reset(self) -> EnvObservation:
        self.begin_episode()
        return self.open_episode(*self._evaluate_now())

    def begin_episode(self) -> None:
        """A fresh host for the next episode; ``open_episode`` completes the reset once the untrained
        host has been validated (by this env, or by its fused group for all its envs at once)."""
        self.episode += 1
        self.model = self.build_model(self.episode)
        self.reward.reset()
        self.stats = EpisodeStats()
        self._pending = None
        self._epoch = 0
        self._last_op, self._last_ok = Op.WAIT, True

    def open_episode(self, val_loss: float, val_acc: float) -> EnvObservation:
        # Before any training the train split looks like the validation split to the host.
        self._train_loss, self._train_acc = val_loss, val_acc
        self._val_loss, self._val_acc = val_loss, val_acc
        self._val_loss_delta = self._val_acc_delta = 0.0
        self._val_acc_without_growth = val_acc if self.measures_growth else None  # nothing grown yet
        self._best_val_acc, self._plateau = val_acc, 0
        self._initial_host_params = self.model.host_param_count()
        self._observation = self._observe()
        return self._observation

    def observe(self) -> EnvObservation:
        return self.observation

    def _observe(self) -> EnvObservation:
        model = self._require_model()
        host_params, seed_params = model.host_param_count(), model.seed_param_count()
        budget = self.config.lifecycle.param_budget * max(1, host_params)
        return EnvObservation(
            epoch=self._epoch,
            episode_length=self.episode_length,
            topology=model.topology,
            train_loss=self._train_loss,
            train_acc=self._train_acc,
            val_loss=self._val_loss,
            val_acc=self._val_acc,
            val_acc_delta=self._val_acc_delta,
            val_loss_delta=self._val_loss_delta,
            best_val_acc=self._best_val_acc,
            plateau_epochs=self._plateau,
            host_params=host_params,
            seed_params=seed_params,
            param_budget_used=seed_params / budget if budget > 0 else 0.0,
            last_op=self._last_op,
            last_action_ok=self._last_ok,
            slots=model.summary(),
            disabled_blueprints=self.quarantine.blueprints,
            disabled_styles=self.quarantine.styles,
            val_acc_without_growth=self._val_acc_without_growth,
        )

    # --------------------------------------------------------------------------------------------- step
    def step(self, action: DecodedAction) -> StepResult:
        self.begin_step(action)
        while self.train_batch():
            pass
        self.launch_validation()
        return self.finish_step()

    def begin_step(self, action: DecodedAction) -> None:
        """Execute the action (it must be legal), snapshot the tensors, and line up the epoch's batches."""
        model = self._require_model()
        if self._epoch >= self.episode_length:
            raise RuntimeError(f"env {self.index}: the episode is over ({self._epoch} steps); call reset()")
        if self._pending is not None:
            raise RuntimeError(f"env {self.index}: begin_step called twice without finish_step")
        before = self.observation
        try:
            if action.op == Op.WAIT:
                transitions = []
            else:
                init_seed = int(torch.randint(0, 2**62, (1,), generator=self._init_generator))
                with forked_rng(init_seed, self.device):
                    transitions = model.execute(action)
        except LifecycleError as error:
            refused = self.quarantine.absorb(error, action, self.index)  # a plugin broke its contract
            if refused is None:
                raise IllegalActionError(f"env {self.index}: the action {action} is illegal here: {error}") from error
            kind, name = error.culprit  # type: ignore[attr-defined]  # absorb accepts only errors naming one
            refused = (kind, name, refused)
            transitions = []
        else:
            refused = None
        total = self.train_samples
        batch = self.config.training.batch_size
        self._pending = {
            "before": before,
            "action": action,
            "transitions": list(transitions),
            "refused": refused,
            "snapshot": take_snapshot(model, None if self.shared_snapshot is None else self.shared_snapshot()),
            "batches": epoch_batches(
                self.data.train_x.shape[0], batch, self._generator, self.device, samples=total,
                # BatchNorm cannot train on a final batch of one sample.
                drop_last=total % batch == 1 and total > 1,
            ),
            "loss_sum": torch.zeros((), device=self.device),
            "correct": torch.zeros((), dtype=torch.long, device=self.device),
            "seen": 0,
        }
        model.train()

    def train_batch(self) -> bool:
        """One optimisation step on the next batch; False once the epoch is done."""
        batch = self.next_train_batch()
        if batch is None:
            return False
        x, y = batch
        model = self._require_model()
        with autocast_context(self.device, self.bf16):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        model.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.finish_train_batch(loss, logits, y)
        return True

    def next_train_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The epoch's next batch, augmented with this env's generator and normalised (None when done)."""
        index = self.next_train_indices()
        if index is None:
            return None
        x = self.data.augment(self.data.train_x.index_select(0, index), self._generator)
        return self.normalise(x), self.data.train_y.index_select(0, index)

    def next_train_indices(self) -> torch.Tensor | None:
        """The epoch's next batch as indices into the train split (None when done). A fused group draws
        each env's indices here and augments with ``generator``, so data order and augmentation stay
        the env's own."""
        pending = self._pending
        if pending is None:
            raise RuntimeError(f"env {self.index}: a training batch before begin_step")
        batches: Iterator[torch.Tensor] = pending["batches"]
        return next(batches, None)

    @property
    def generator(self) -> torch.Generator:
        """This env's data-order and augmentation stream (on its device)."""
        return self._generator

    def finish_train_batch(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """After backward: gradient bookkeeping, the optimiser step and the epoch's running numbers, on
        the device (no sync)."""
        pending = self._pending
        assert pending is not None
        model = self._require_model()
        model.record_grad_norms()
        model.optimizer.step()
        with torch.no_grad():
            pending["loss_sum"] += loss.detach() * y.numel()
            pending["correct"] += (logits.argmax(dim=1) == y).sum()
        pending["seen"] += int(y.numel())

    def add_train_totals(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> None:
        """A fused group's running numbers for this env's epoch (device tensors, no sync)."""
        pending = self._pending
        assert pending is not None
        pending["loss_sum"] += loss_sum
        pending["correct"] += correct
        pending["seen"] += seen

    def launch_validation(self, result: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Queue the validation pass (device accumulators, no sync); ``result`` is the pass's
        ``(loss_sum, correct)`` when a fused group already made it for this env."""
        pending = self._pending
        if pending is None:
            raise RuntimeError(f"env {self.index}: launch_validation before begin_step")
        pending["val"] = self._validate() if result is None else result

    def finish_step(self) -> StepResult:
        pending = self._pending
        if pending is None or "val" not in pending:
            raise RuntimeError(f"env {self.index}: finish_step needs begin_step, the batches and launch_validation")
        model = self._require_model()
        val_loss_sum, val_correct = pending["val"]
        seen = max(1, pending["seen"])
        train_loss_sum, train_correct, val_loss_sum, val_correct = torch.stack(
            [pending["loss_sum"].float(), pending["correct"].float(), val_loss_sum.float(), val_correct.float()]
        ).tolist()  # the step's one sync for training metrics
        transitions = list(pending["transitions"])
        fault, fault_pruned = None, ()
        if not (math.isfinite(train_loss_sum) and math.isfinite(val_loss_sum)):
            failed = "training" if not math.isfinite(train_loss_sum) else "validation"
            recovery = recover(model, pending["snapshot"], failed)
            fault, fault_pruned = recovery.reason, recovery.pruned
            transitions.extend(recovery.transitions)
            val_loss, val_acc = self._evaluate_now()
            train_loss, train_acc = self._train_loss, self._train_acc  # the failed epoch taught nothing
        else:
            train_loss = train_loss_sum / seen
            train_acc = self.score(train_loss, train_correct / seen)
            val_loss, val_acc = self.validation_result(val_loss_sum, val_correct)
        # A fused group measured the contributions with the validation (one wide pass for all envs); after
        # a rollback the seeds it measured may be gone, so measure again.
        measured = self._measure_contributions(None if fault else pending.get("contributions"))
        self._val_acc_without_growth = self._without_growth(val_acc, None if fault else pending)
        transitions.extend(model.step_epoch())
        self._pending = None
        self._epoch += 1
        self._val_loss_delta, self._val_acc_delta = val_loss - self._val_loss, val_acc - self._val_acc
        self._train_loss, self._train_acc, self._val_loss, self._val_acc = train_loss, train_acc, val_loss, val_acc
        if val_acc > self._best_val_acc:
            self._best_val_acc, self._plateau = val_acc, 0
        else:
            self._plateau += 1
        action: DecodedAction = pending["action"]
        self._faulted_steps = self._faulted_steps + 1 if fault is not None else 0
        check_fault_streak(self._faulted_steps, self.episode_length, self.host_spec.name, self.index, self.config.training)
        action_ok = fault is None and pending.get("refused") is None
        self._last_op, self._last_ok = action.op, action_ok
        after = self._observe()
        self._observation = after
        done = self._epoch >= self.episode_length
        frozen = tuple(transitions)
        value, components = self.reward(
            RewardInputs(before=pending["before"], action=action, after=after, transitions=frozen, done=done)
        )
        self.stats = self.stats.after(frozen, fault is not None)
        info = StepInfo(
            transitions=frozen, action_ok=action_ok, fault=fault, fault_pruned=fault_pruned, contributions=measured,
            disabled=pending.get("refused"),
        )
        return StepResult(observation=after, reward=float(value), components=dict(components), done=done, info=info)

    @property
    def params_added(self) -> int:
        """Host parameters gained this episode (fossilized seeds)."""
        return self._require_model().host_param_count() - self._initial_host_params

    # --------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def _validate(self) -> tuple[torch.Tensor, torch.Tensor]:
        model = self._require_model()
        was_training = model.training
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        size = self.config.training.eval_batch_size
        try:
            for start in range(0, self.val_count, size):
                stop = min(start + size, self.val_count)
                y = self.data.val_y[start:stop]
                with autocast_context(self.device, self.bf16):
                    logits = model(self.normalise(self.data.val_x[start:stop]))
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
                correct += (logits.argmax(dim=1) == y).sum()
        finally:
            model.train(was_training)
        return loss_sum, correct

    def score(self, loss: float, accuracy: float) -> float:
        """The task metric's score (higher is better) from a pass's mean loss and accuracy per target."""
        return self.metric.score(self.metric.value(loss=loss, accuracy=accuracy))

    def validation_result(self, loss_sum: float, correct: float) -> tuple[float, float]:
        """Mean loss and the task metric's score of a validation pass from its sums (this env's own pass or a
        fused group's share of its wide one): one conversion for both paths."""
        loss = loss_sum / self._val_targets
        return loss, self.score(loss, correct / self._val_targets)

    def _evaluate_now(self) -> tuple[float, float]:
        return self.validation_result(*torch.stack([t.float() for t in self._validate()]).tolist())

    @torch.no_grad()
    def evaluate_split(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The task metric's score on a held-out split (``esper eval``; accuracy for classification)."""
        model = self._require_model()
        model.eval()
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        size = self.config.training.eval_batch_size
        for start in range(0, x.shape[0], size):
            with autocast_context(self.device, self.bf16):
                logits = model(self.normalise(x[start : start + size]))
            correct += (logits.argmax(dim=1) == y[start : start + size]).sum()
            loss_sum += F.cross_entropy(logits.float(), y[start : start + size], reduction="sum")
        model.train()
        targets = max(1, y.numel())
        return self.score(float(loss_sum) / targets, int(correct) / targets)

    def set_accuracy_without_growth(self, value: float | None) -> None:
        """A fused group's no-growth reference for this step (None: nothing was blended in)."""
        pending = self._pending
        if pending is None:
            raise RuntimeError(f"env {self.index}: set_accuracy_without_growth before begin_step")
        pending["without_growth"] = value

    def _without_growth(self, val_acc: float, pending: Mapping[str, Any] | None) -> float | None:
        """Validation accuracy with every grown seed at alpha 0 (``growth_switched_off``), on the validation
        pass's own samples and batches; ``val_acc`` itself while nothing is blended in."""
        if not self.measures_growth:
            return None
        if pending is not None and "without_growth" in pending:
            value = pending["without_growth"]
        else:
            with growth_switched_off(self._require_model()) as switched:
                value = self._evaluate_now()[1] if switched else None
        return val_acc if value is None else value

    def set_contributions(self, measured: Mapping[str, SlotContribution]) -> None:
        """A fused group's counterfactual measurement for this step (used by ``finish_step``)."""
        pending = self._pending
        if pending is None:
            raise RuntimeError(f"env {self.index}: set_contributions before begin_step")
        pending["contributions"] = dict(measured)

    def _measure_contributions(self, measured: Mapping[str, SlotContribution] | None = None) -> dict[str, float]:
        model = self._require_model()
        if measured is None:
            measured = contributions(
                model,
                self.data.val_x[: self.val_count],
                self.data.val_y[: self.val_count],
                self.normalise,
                self.config.training.eval_batch_size,
                autocast_dtype=torch.bfloat16 if self.bf16 else None,
                metric=self.metric,
            )
        values = {name: result.contribution for name, result in measured.items()}
        for name, value in values.items():
            model.set_contribution(name, value)
        return values

    # ------------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """What a round-boundary checkpoint needs (episodes restart there: no host tensors)."""
        return {
            "episode": self.episode,
            "generator": self._generator.get_state(),
            "init_generator": self._init_generator.get_state(),
            "disabled": self.quarantine.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.episode = int(state["episode"])
        self._generator.set_state(state["generator"])
        self._init_generator.set_state(state["init_generator"])
        self.quarantine.load_state_dict(state.get("disabled"))
        self.model, self._observation, self._pending = None, None, None

