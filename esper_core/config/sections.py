"""The run configuration: attrs classes, one per section. One source of truth for every default.

Precedence: defaults < preset < the chosen host's adjustments to it < config file (TOML or JSON) < CLI flags. Loading, merging and the strict
cattrs converter live in ``esper_core.config.loading``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from esper_core.config.presets import PRESET_CHOICES
from esper_core.ops import ALPHA_CURVES
from esper_core.validators import (
    HELP,
    at_least,
    check,
    frozen_dict,
    int_at_least,
    int_within,
    is_number,
    non_negative_int,
    one_of,
    positive,
    unique_nonempty,
    within,
)


#: Upper bounds on sizes: far above any sensible run, far below what would exhaust a machine or crash torch.
MAX_ENVS = 1024
MAX_EPISODE_LENGTH = 10_000
MAX_ROUNDS = 1_000_000
MAX_BATCH = 65_536
MAX_EPOCH_SAMPLES = 100_000_000
MAX_THREADS = 1024
MAX_LR = 10.0
MAX_RUN_NAME_BYTES = 200


def _run_name(value: Any) -> bool:
    return (
        isinstance(value, str) and value not in {"", ".", ".."} and "/" not in value and "\\" not in value
        and len(value.encode("utf-8")) <= MAX_RUN_NAME_BYTES
    )


def _help(text: str) -> dict[str, str]:
    return {HELP: text}


@attrs.frozen(kw_only=True)
class RunConfig:
    section: ClassVar[str] = "run"

    name: str | None = attrs.field(
        default=None,
        validator=check(_run_name, f"must be a plain directory name (no '/', at most {MAX_RUN_NAME_BYTES} bytes)", optional=True),
        metadata=_help("run directory name under run_dir; unset: host-policy-timestamp"),
    )
    run_dir: str = attrs.field(default="runs", metadata=_help("directory that holds the run directories"))
    seed: int = attrs.field(
        default=0, validator=non_negative_int, metadata=_help("random seed; a run is reproducible from its config")
    )
    preset: str = attrs.field(
        default="auto", validator=one_of(PRESET_CHOICES),
        metadata=_help("sizing preset: cpu-quick, gpu, or auto (gpu with CUDA, else cpu-quick)"),
    )
    rounds: int = attrs.field(
        default=4, validator=int_within(1, MAX_ROUNDS),
        metadata=_help("rounds to play; a round is one episode in every env, then one policy update"),
    )
    envs: int = attrs.field(
        default=2, validator=int_within(1, MAX_ENVS), metadata=_help("environments (host copies) per round")
    )
    episode_length: int = attrs.field(
        default=12, validator=int_within(1, MAX_EPISODE_LENGTH), metadata=_help("env steps (host epochs) per episode")
    )
    checkpoint_every: int = attrs.field(
        default=1, validator=positive, metadata=_help("write a checkpoint every this many rounds (and at the end)")
    )
    keep_checkpoints: int = attrs.field(
        default=3, validator=non_negative_int,
        metadata=_help("newest checkpoints kept on disk, older ones deleted; 0 keeps every one"),
    )


@attrs.frozen(kw_only=True)
class TaskConfig:
    section: ClassVar[str] = "task"

    name: str = attrs.field(
        default="auto",
        metadata=_help("task plugin; auto: the available task with the highest auto_priority that the host can read"),
    )
    data_dir: str = attrs.field(default="data", metadata=_help("directory the task reads its dataset from"))
    download: bool = attrs.field(
        default=False, metadata=_help("let a task that can download its dataset do so when it is missing")
    )
    options: dict[str, Any] = attrs.field(
        factory=dict, converter=frozen_dict, metadata=_help("the task plugin's own options (esper config show lists them)")
    )


@attrs.frozen(kw_only=True)
class HostConfig:
    section: ClassVar[str] = "host"

    name: str = attrs.field(default="resnet", metadata=_help("host network plugin (the network that grows)"))
    options: dict[str, Any] = attrs.field(
        factory=dict, converter=frozen_dict, metadata=_help("the host plugin's own options")
    )


@attrs.frozen(kw_only=True)
class PolicyConfig:
    section: ClassVar[str] = "policy"

    name: str = attrs.field(default="ppo_v2", metadata=_help("policy plugin (the controller)"))
    options: dict[str, Any] = attrs.field(
        factory=dict, converter=frozen_dict, metadata=_help("the policy plugin's own options (ppo_v2: all its hyperparameters)")
    )


@attrs.frozen(kw_only=True)
class RewardConfig:
    section: ClassVar[str] = "reward"

    name: str = attrs.field(default="contribution", metadata=_help("reward plugin (scores each decision)"))
    options: dict[str, Any] = attrs.field(
        factory=dict, converter=frozen_dict, metadata=_help("the reward plugin's own options")
    )


@attrs.frozen(kw_only=True)
class TrainingConfig:
    """How the host (and its seeds) train within one env step (= one epoch)."""

    section: ClassVar[str] = "training"

    batch_size: int = attrs.field(
        default=128, validator=int_within(1, MAX_BATCH), metadata=_help("host training batch size")
    )
    lr: float = attrs.field(default=0.05, validator=within(0.0, MAX_LR), metadata=_help("host SGD learning rate"))
    momentum: float = attrs.field(
        default=0.9, validator=within(0.0, 1.0, high_open=True), metadata=_help("host SGD momentum")
    )
    weight_decay: float = attrs.field(
        default=5e-4, validator=within(0.0, 1.0), metadata=_help("host SGD weight decay")
    )
    seed_lr: float = attrs.field(
        default=0.05, validator=within(0.0, MAX_LR), metadata=_help("SGD learning rate of each live seed")
    )
    # Why the pull (see esper_core.growth.slot): without it the isolated seed follows a linearised loss with
    # no minimum and its output grows without bound.
    seed_proximal: float = attrs.field(
        default=3.0, validator=at_least(0.0),
        metadata=_help("proximal pull on a TRAINING seed's output, which keeps it bounded; 0 turns it off"),
    )
    epoch_samples: int | None = attrs.field(
        default=None, validator=int_within(1, MAX_EPOCH_SAMPLES, optional=True),
        metadata=_help("training samples per epoch (env step); unset: the whole train split"),
    )
    val_samples: int | None = attrs.field(
        default=None, validator=int_at_least(1, optional=True),
        metadata=_help("validation samples used per step; unset: the whole val split"),
    )
    eval_batch_size: int = attrs.field(
        default=512, validator=int_within(1, MAX_BATCH), metadata=_help("batch size of validation and test passes")
    )


@attrs.frozen(kw_only=True)
class LifecycleConfig:
    """Gates of the seed lifecycle (named thresholds; the masks and the executor both enforce them)."""

    section: ClassVar[str] = "lifecycle"

    min_training_epochs: int = attrs.field(
        default=2, validator=non_negative_int, metadata=_help("epochs in TRAINING before ADVANCE to BLENDING")
    )
    min_prune_age: int = attrs.field(
        default=3, validator=non_negative_int, metadata=_help("seed age (epochs) before PRUNE is allowed")
    )
    embargo_epochs: int = attrs.field(
        default=2, validator=non_negative_int, metadata=_help("epochs a pruned slot stays EMBARGOED")
    )
    resetting_epochs: int = attrs.field(
        default=1, validator=non_negative_int, metadata=_help("epochs in RESETTING before the slot is DORMANT again")
    )
    max_seeds: int = attrs.field(
        default=3, validator=int_within(1, 1024), metadata=_help("live seeds at once, per env")
    )
    germinate_curve: str = attrs.field(
        default="linear", validator=one_of(ALPHA_CURVES), metadata=_help("alpha curve used when a germinated seed starts blending")
    )
    param_budget: float = attrs.field(
        default=0.5, validator=within(0.0, 1000.0, low_open=True),
        metadata=_help("live seed parameters, as a fraction of host parameters, that use the whole budget (an observation feature)"),
    )


@attrs.frozen(kw_only=True)
class ActionsConfig:
    """The action space's value tables and which plugins the policy may choose among."""

    section: ClassVar[str] = "actions"

    blueprints: tuple[str, ...] | None = attrs.field(
        default=None, validator=check(unique_nonempty, "must list at least one name, each once", optional=True),
        metadata=_help("blueprints the policy may germinate; unset: every registered blueprint that fits the host"),
    )
    blend_styles: tuple[str, ...] | None = attrs.field(
        default=None, validator=check(unique_nonempty, "must list at least one name, each once", optional=True),
        metadata=_help("blend styles the policy may choose; unset: every registered one"),
    )
    tempos: tuple[int, ...] = attrs.field(
        default=(3, 5, 8),
        validator=check(
            lambda t: unique_nonempty(t) and all(isinstance(x, int) and x >= 0 for x in t),
            "must list distinct integers >= 0",
        ),
        metadata=_help("blending durations (epochs) the tempo head chooses among"),
    )
    alpha_targets: tuple[float, ...] = attrs.field(
        default=(0.5, 0.7, 1.0),
        validator=check(
            lambda t: unique_nonempty(t) and all(is_number(x) and 0.0 < x <= 1.0 for x in t),
            "must list distinct numbers in (0, 1]",
        ),
        metadata=_help("alpha targets the alpha_target head chooses among"),
    )


@attrs.frozen(kw_only=True)
class DeviceConfig:
    section: ClassVar[str] = "device"

    device: str = attrs.field(default="auto", metadata=_help("torch device: auto (cuda if available, else cpu), cpu, cuda:1 ..."))
    devices: tuple[str, ...] = attrs.field(
        default=(), metadata=_help("spread the envs over these devices (overrides device when not empty)")
    )
    bf16: bool = attrs.field(default=True, metadata=_help("autocast host training to bfloat16 on CUDA"))
    channels_last: bool = attrs.field(
        default=True, metadata=_help("channels-last memory format on CUDA for envs trained one after another; fused groups train NCHW")
    )
    compile: bool = attrs.field(default=False, metadata=_help("torch.compile the hosts"))
    # Why auto fuses only on CUDA: one after another the hosts leave the GPU launch-bound; on a CPU a wide
    # network buys little and would change the CPU trajectories.
    fused: str = attrs.field(
        default="auto", validator=one_of(("auto", "on", "off")),
        metadata=_help("train a device's envs as one wide network: auto (on CUDA), on, off"),
    )
    threads: int | None = attrs.field(
        default=None, validator=int_within(1, MAX_THREADS, optional=True),
        metadata=_help("CPU threads for torch; unset: torch's default; more than the machine has are cut to its CPU count"),
    )


def _options_tables(value: Any) -> bool:
    return all(isinstance(name, str) and isinstance(table, dict) for name, table in value.items())


@attrs.frozen(kw_only=True)
class ObserversConfig:
    """Which observer plugins (metrics sinks such as ``tensorboard`` or ``wandb``) a run switches on.

    Observers only watch: switching one on or off never changes what a run computes. Each named observer's
    options are the table ``observers.options.<name>``, checked against its ``options_type``.
    """

    section: ClassVar[str] = "observers"

    enabled: tuple[str, ...] = attrs.field(
        default=(), validator=check(lambda t: len(set(t)) == len(t), "must name each observer once"),
        metadata=_help('observer plugins switched on, e.g. ["tensorboard"]; none by default'),
    )
    options: dict[str, Any] = attrs.field(
        factory=dict, converter=frozen_dict, validator=check(_options_tables, "must map observer names to tables"),
        metadata=_help("observer name -> its options table"),
    )


@attrs.frozen(kw_only=True)
class EsperConfig:
    run: RunConfig = attrs.field(factory=RunConfig)
    task: TaskConfig = attrs.field(factory=TaskConfig)
    host: HostConfig = attrs.field(factory=HostConfig)
    policy: PolicyConfig = attrs.field(factory=PolicyConfig)
    reward: RewardConfig = attrs.field(factory=RewardConfig)
    training: TrainingConfig = attrs.field(factory=TrainingConfig)
    lifecycle: LifecycleConfig = attrs.field(factory=LifecycleConfig)
    actions: ActionsConfig = attrs.field(factory=ActionsConfig)
    device: DeviceConfig = attrs.field(factory=DeviceConfig)
    observers: ObserversConfig = attrs.field(factory=ObserversConfig)
