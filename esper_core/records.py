"""Plain data passed between the core and plugins. Frozen attrs records; tensors stay on their device."""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs
import torch

from esper_core.ops import Op
from esper_core.stages import SeedStage


def _check_metric_range(instance: "TaskMetric", attribute: attrs.Attribute, value: float) -> None:
    if not (math.isfinite(instance.worst) and math.isfinite(instance.best) and instance.worst != instance.best):
        raise ValueError(f"TaskMetric {instance.name!r}: worst and best must be finite and differ; got {instance.worst}, {instance.best}")


@attrs.frozen(kw_only=True)
class TaskMetric:
    """The number a task is judged by, declared by the task (``TaskInfo.metric``), and its *score*.

    The core measures two things on every pass: the mean cross-entropy per target (``loss``, nats) and the
    fraction of targets whose argmax is right (``accuracy``). The metric is one of them times ``scale``
    (``from_loss``). Its score maps ``worst`` to 0 and ``best`` to 1, so it always rises as the network
    improves: observations, plateaus, counterfactual contributions and rewards use the score (the
    ``*_acc`` fields of ``EnvObservation``), whatever the metric's direction. For classification the
    metric is accuracy and the score is accuracy itself, bit for bit.
    """

    name: str = "accuracy"
    from_loss: bool = False
    scale: float = 1.0
    worst: float = 0.0
    best: float = attrs.field(default=1.0, validator=_check_metric_range)

    @property
    def higher_is_better(self) -> bool:
        return self.best > self.worst

    def value(self, loss: float, accuracy: float) -> float:
        """The metric from one pass's mean loss per target and accuracy."""
        return self.scale * (loss if self.from_loss else accuracy)  # x 1.0 is exact: accuracy stays bit for bit

    def score(self, value: float) -> float:
        """``value`` on the higher-is-better scale: 0 at ``worst``, 1 at ``best``."""
        return (value - self.worst) / (self.best - self.worst)

    def value_of(self, score: float) -> float:
        """The metric a score stands for (the inverse of ``score``)."""
        return self.worst + score * (self.best - self.worst)

    # Labels for people (console, ``esper report``, ``esper eval``): accuracy keeps the words it always had.
    @property
    def is_accuracy(self) -> bool:
        """Whether the score is plain accuracy (then labels say "acc" and show the score itself)."""
        return self.name == "accuracy" and not self.from_loss and (self.worst, self.best) == (0.0, 1.0)

    @property
    def label(self) -> str:
        """The metric's name in words: ``bits_per_byte`` -> ``bits per byte``."""
        return self.name.replace("_", " ")

    @property
    def short(self) -> str:
        """A short label for narrow lines: ``acc``, or the initials of a multi-word name (``bpb``)."""
        if self.is_accuracy:
            return "acc"
        words = self.label.split()
        return "".join(w[0] for w in words) if len(words) > 1 else self.label

    @property
    def score_label(self) -> str:
        """What a score axis or column is, e.g. ``accuracy`` or ``score (1 - bits per byte / 8)``."""
        if self.is_accuracy:
            return "accuracy"
        if self.best == 0.0:
            formula = f"1 - {self.label} / {self.worst:g}"
        elif self.worst == 0.0:
            formula = f"{self.label} / {self.best:g}"
        else:
            formula = f"({self.label} - {self.worst:g}) / ({self.best:g} - {self.worst:g})"
        return f"score ({formula})"

    @property
    def score_short(self) -> str:
        """A score column's short name: ``acc`` or ``score``."""
        return "acc" if self.is_accuracy else "score"

    def describe(self, score: float, digits: int = 3) -> str:
        """A score as people read it: ``acc 0.512`` (unchanged for accuracy) or ``bpb 3.104``."""
        return f"{self.short} {self.value_of(score):.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        """What a run records (config.json ``metric``) so ``esper report`` can label it later."""
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Any) -> "TaskMetric":
        """The metric a run recorded; accuracy for runs from before it was recorded or a damaged record."""
        if not isinstance(record, dict):
            return ACCURACY
        try:
            fields = {f.name for f in attrs.fields(cls)}
            metric = cls(**{k: v for k, v in record.items() if k in fields})
            metric.score(0.0)  # a nonsense record (strings, worst == best) falls back too
            return metric if isinstance(metric.name, str) else ACCURACY
        except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
            return ACCURACY


#: What every classification task is judged by (the default).
ACCURACY = TaskMetric()


@attrs.frozen
class TaskInfo:
    """What a host needs to know about a task to build itself. Image tasks: inputs [B, in_channels,
    image_size, image_size], ``num_classes`` labels. Sequence tasks (``sequence_length`` set): inputs are
    [B, sequence_length] token ids below ``num_classes`` and targets one token per position."""

    name: str
    in_channels: int
    image_size: int
    num_classes: int
    metric: TaskMetric = ACCURACY
    sequence_length: int | None = None


@attrs.frozen(kw_only=True, eq=False)
class TaskData:
    """A loaded task. Images are uint8 NCHW on the target device; labels int64.

    ``augment(x_uint8, generator) -> x_uint8`` runs on the device (random crop with padding, flip);
    ``normalise`` turns uint8 into float features. ``test`` is a held-out split used only for final numbers.
    """

    info: TaskInfo
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]
    #: Turns stored inputs into what the host reads, for inputs that are not uint8 images (e.g. token ids
    #: to int64). None: images, normalised with ``mean`` and ``std``.
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None

    def normalise(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if self.encode is not None:
            return self.encode(x)
        mean = torch.tensor(self.mean, device=x.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
        std = torch.tensor(self.std, device=x.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
        return (x.to(dtype) - mean) / std


@attrs.frozen
class SlotPoint:
    """A place in a host where a seed can grow: features there are [B, channels, spatial, spatial], or for
    a sequence host (``sequence``) [B, spatial, channels]: ``spatial`` positions of ``channels`` features."""

    name: str
    channels: int
    spatial: int
    sequence: bool = False

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The features' shape after the batch dimension."""
        return (self.spatial, self.channels) if self.sequence else (self.channels, self.spatial, self.spatial)


@attrs.frozen(kw_only=True)
class SlotSummary:
    """One slot's state as the controller, masks and rewards see it (host-side Python values)."""

    name: str
    stage: SeedStage
    blueprint: str | None = None
    style: str | None = None
    alpha: float = 0.0
    alpha_target: float = 0.0
    alpha_at_target: bool = True
    epochs_in_stage: int = 0
    seed_age: int = 0
    embargo_left: int = 0
    seed_params: int = 0
    last_contribution: float | None = None
    grad_norm_ratio: float = 0.0


@attrs.frozen(kw_only=True)
class EnvObservation:
    """Everything a policy may look at for one env at one step (before it acts)."""

    epoch: int
    episode_length: int
    topology: str
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    val_acc_delta: float
    val_loss_delta: float
    best_val_acc: float
    plateau_epochs: int
    host_params: int
    seed_params: int
    param_budget_used: float
    last_op: Op
    last_action_ok: bool
    slots: tuple[SlotSummary, ...]
    #: Blueprints / blend styles this run disabled after they broke their contract (a wrong shape at
    #: germination, a factory that raised): the masks leave them out, so the policy cannot pick them again.
    disabled_blueprints: tuple[str, ...] = ()
    disabled_styles: tuple[str, ...] = ()
    #: Validation accuracy of this same network with every seed it grew (fossils included) at alpha 0 at once,
    #: on the same samples as ``val_acc``: a no-growth reference. Measured only for a reward that asks for it
    #: (``measures_growth = True`` on the reward object); None when not measured.
    val_acc_without_growth: float | None = None


@attrs.frozen(kw_only=True)
class DecodedAction:
    """A factored action in names and values; ``slot`` and the rest are None where the op ignores them."""

    op: Op
    slot: str | None = None
    blueprint: str | None = None
    style: str | None = None
    tempo: int | None = None
    alpha_target: float | None = None
    alpha_speed: str | None = None
    alpha_curve: str | None = None


@attrs.frozen
class StageTransition:
    slot: str
    from_stage: SeedStage
    to_stage: SeedStage
    reason: str = ""


@attrs.frozen(kw_only=True)
class RewardInputs:
    """The consequence of one action: r_t is computed from the state before a_t and the state after it."""

    before: EnvObservation
    action: DecodedAction
    after: EnvObservation
    transitions: tuple[StageTransition, ...] = ()
    done: bool = False


@attrs.frozen(kw_only=True)
class PolicyContext:
    """What a policy factory gets besides its own options: the action space, sizes, where to run, its seed
    and the lifecycle gates (its masks must enforce them). An algorithm's hyperparameters are never here:
    they are the policy's own options (``policy.options.*``)."""

    space: Any  # esper_core.rl.actions.ActionSpace
    n_envs: int
    episode_length: int
    device: torch.device
    seed: int
    lifecycle: Any  # esper_core.config.LifecycleConfig


@attrs.frozen(kw_only=True, eq=False)
class PolicyOutput:
    """One batched decision. ``actions``/``log_probs``: [E, len(HEADS)]; ``masks``: head -> [E, n] bool,
    exactly the masks sampled under (stored, never recomputed). ``features`` is what a learning policy
    wants stored in the rollout (None for policies that do not learn)."""

    actions: torch.Tensor
    log_probs: torch.Tensor
    masks: dict[str, torch.Tensor]
    value: torch.Tensor
    state: Any
    features: torch.Tensor | None = None
