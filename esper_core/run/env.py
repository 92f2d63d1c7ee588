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
from typing import Any, Iterator, Mapping

import attrs
import torch
import torch.nn.functional as F

from esper_core.config.sections import EsperConfig
from esper_core.growth.counterfactual import contributions
from esper_core.data import epoch_batches
from esper_core.run.faults import recover, take_snapshot
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
        self.blueprints = dict(registry.specs("blueprint"))
        self.styles = dict(registry.specs("blend_style"))
        cuda = self.device.type == "cuda"
        self.bf16 = cuda and config.device.bf16
        self.memory_format = torch.channels_last if cuda and config.device.channels_last else torch.contiguous_format
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
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(derived_seed(self.seed, 1))
        self._init_generator = torch.Generator()
        self._init_generator.manual_seed(derived_seed(self.seed, 2))
        self.episode = -1
        self.model: MorphogeneticModel | None = None
        self._pending: dict[str, Any] | None = None
        self._observation: EnvObservation | None = None
        self.stats = EpisodeStats()

    # ------------------------------------------------------------------------------------------ helpers
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float features (same values as ``TaskData.normalise``, constants cached on the device)."""
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
        self.episode += 1
        self.model = self.build_model(self.episode)
        self.reward.reset()
        self.stats = EpisodeStats()
        self._pending = None
        self._epoch = 0
        self._last_op, self._last_ok = Op.WAIT, True
        val_loss, val_acc = self._evaluate_now()
        # Before any training the train split looks like the validation split to the host.
        self._train_loss, self._train_acc = val_loss, val_acc
        self._val_loss, self._val_acc = val_loss, val_acc
        self._val_loss_delta = self._val_acc_delta = 0.0
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
            raise IllegalActionError(f"env {self.index}: the action {action} is illegal here: {error}") from error
        total = self.train_samples
        batch = self.config.training.batch_size
        self._pending = {
            "before": before,
            "action": action,
            "transitions": list(transitions),
            "snapshot": take_snapshot(model),
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
        pending = self._pending
        if pending is None:
            raise RuntimeError(f"env {self.index}: train_batch before begin_step")
        batches: Iterator[torch.Tensor] = pending["batches"]
        index = next(batches, None)
        if index is None:
            return False
        model = self._require_model()
        x = self.data.augment(self.data.train_x.index_select(0, index), self._generator)
        y = self.data.train_y.index_select(0, index)
        with autocast_context(self.device, self.bf16):
            logits = model(self.normalise(x))
            loss = F.cross_entropy(logits.float(), y)
        model.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        model.record_grad_norms()
        model.optimizer.step()
        with torch.no_grad():
            pending["loss_sum"] += loss.detach() * y.shape[0]
            pending["correct"] += (logits.argmax(dim=1) == y).sum()
        pending["seen"] += int(y.shape[0])
        return True

    def launch_validation(self) -> None:
        """Queue the validation pass (device accumulators, no sync)."""
        pending = self._pending
        if pending is None:
            raise RuntimeError(f"env {self.index}: launch_validation before begin_step")
        pending["val"] = self._validate()

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
            train_loss, train_acc = train_loss_sum / seen, train_correct / seen
            val_loss, val_acc = val_loss_sum / self.val_count, val_correct / self.val_count
        measured = self._measure_contributions()
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
        self._last_op, self._last_ok = action.op, fault is None
        after = self._observe()
        self._observation = after
        done = self._epoch >= self.episode_length
        frozen = tuple(transitions)
        value, components = self.reward(
            RewardInputs(before=pending["before"], action=action, after=after, transitions=frozen, done=done)
        )
        self.stats = self.stats.after(frozen, fault is not None)
        info = StepInfo(
            transitions=frozen, action_ok=fault is None, fault=fault, fault_pruned=fault_pruned, contributions=measured
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

    def _evaluate_now(self) -> tuple[float, float]:
        loss_sum, correct = torch.stack([t.float() for t in self._validate()]).tolist()
        return loss_sum / self.val_count, correct / self.val_count

    @torch.no_grad()
    def evaluate_split(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy on a held-out split (``esper eval``)."""
        model = self._require_model()
        model.eval()
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        size = self.config.training.eval_batch_size
        for start in range(0, x.shape[0], size):
            with autocast_context(self.device, self.bf16):
                logits = model(self.normalise(x[start : start + size]))
            correct += (logits.argmax(dim=1) == y[start : start + size]).sum()
        model.train()
        return int(correct) / max(1, x.shape[0])

    def _measure_contributions(self) -> dict[str, float]:
        model = self._require_model()
        measured = contributions(
            model,
            self.data.val_x[: self.val_count],
            self.data.val_y[: self.val_count],
            self.normalise,
            self.config.training.eval_batch_size,
            autocast_dtype=torch.bfloat16 if self.bf16 else None,
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
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.episode = int(state["episode"])
        self._generator.set_state(state["generator"])
        self._init_generator.set_state(state["init_generator"])
        self.model, self._observation, self._pending = None, None, None

