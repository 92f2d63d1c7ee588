"""The run configuration: attrs classes, one per section. One source of truth for every default.

Precedence: defaults < preset < config file (TOML or JSON) < CLI flags. Loading, merging and the strict
cattrs converter live in ``esper_core.config.loading``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from esper_core.config.presets import PRESET_CHOICES
from esper_core.ops import ALPHA_CURVES
from esper_core.validators import (
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


@attrs.frozen(kw_only=True)
class RunConfig:
    section: ClassVar[str] = "run"

    name: str | None = attrs.field(  # run directory name under run_dir; default: a timestamp
        default=None, validator=check(_run_name, f"must be a plain directory name (no '/', at most {MAX_RUN_NAME_BYTES} bytes)", optional=True)
    )
    run_dir: str = "runs"
    seed: int = attrs.field(default=0, validator=non_negative_int)
    preset: str = attrs.field(  # auto -> "cpu-quick" without CUDA, "gpu" with it
        default="auto", validator=one_of(PRESET_CHOICES)
    )
    rounds: int = attrs.field(default=4, validator=int_within(1, MAX_ROUNDS))  # a round = one episode in every env, then one policy update
    envs: int = attrs.field(default=2, validator=int_within(1, MAX_ENVS))
    episode_length: int = attrs.field(default=12, validator=int_within(1, MAX_EPISODE_LENGTH))  # env steps (host epochs) per episode
    checkpoint_every: int = attrs.field(default=1, validator=positive)  # rounds


@attrs.frozen(kw_only=True)
class TaskConfig:
    section: ClassVar[str] = "task"

    name: str = "auto"
    data_dir: str = "data"
    download: bool = False
    options: dict[str, Any] = attrs.field(factory=dict, converter=frozen_dict)


@attrs.frozen(kw_only=True)
class HostConfig:
    section: ClassVar[str] = "host"

    name: str = "resnet"
    options: dict[str, Any] = attrs.field(factory=dict, converter=frozen_dict)


@attrs.frozen(kw_only=True)
class PolicyConfig:
    section: ClassVar[str] = "policy"

    name: str = "ppo_v2"
    options: dict[str, Any] = attrs.field(factory=dict, converter=frozen_dict)


@attrs.frozen(kw_only=True)
class RewardConfig:
    section: ClassVar[str] = "reward"

    name: str = "contribution"
    options: dict[str, Any] = attrs.field(factory=dict, converter=frozen_dict)


@attrs.frozen(kw_only=True)
class TrainingConfig:
    """How the host (and its seeds) train within one env step (= one epoch)."""

    section: ClassVar[str] = "training"

    batch_size: int = attrs.field(default=128, validator=int_within(1, MAX_BATCH))
    lr: float = attrs.field(default=0.05, validator=within(0.0, MAX_LR))
    momentum: float = attrs.field(default=0.9, validator=within(0.0, 1.0, high_open=True))
    weight_decay: float = attrs.field(default=5e-4, validator=within(0.0, 1.0))
    seed_lr: float = attrs.field(default=0.05, validator=within(0.0, MAX_LR))
    # Proximal pull on a TRAINING seed's output (see esper_core.growth.slot): without it the isolated seed follows a
    # linearised loss with no minimum and its output grows without bound. 0 turns it off.
    seed_proximal: float = attrs.field(default=3.0, validator=at_least(0.0))
    # training samples per epoch; None = the whole train split
    epoch_samples: int | None = attrs.field(default=None, validator=int_within(1, MAX_EPOCH_SAMPLES, optional=True))
    # validation samples used per step; None = the whole val split
    val_samples: int | None = attrs.field(default=None, validator=int_at_least(1, optional=True))
    eval_batch_size: int = attrs.field(default=512, validator=int_within(1, MAX_BATCH))


@attrs.frozen(kw_only=True)
class LifecycleConfig:
    """Gates of the seed lifecycle (named thresholds; the masks and the executor both enforce them)."""

    section: ClassVar[str] = "lifecycle"

    # epochs in TRAINING before ADVANCE to BLENDING
    min_training_epochs: int = attrs.field(default=2, validator=non_negative_int)
    min_prune_age: int = attrs.field(default=3, validator=non_negative_int)  # seed age before PRUNE
    embargo_epochs: int = attrs.field(default=2, validator=non_negative_int)  # epochs a pruned slot stays EMBARGOED
    # epochs in RESETTING before the slot is DORMANT again
    resetting_epochs: int = attrs.field(default=1, validator=non_negative_int)
    max_seeds: int = attrs.field(default=3, validator=int_within(1, 1024))  # live seeds at once
    # alpha curve used when a germinated seed starts blending
    germinate_curve: str = attrs.field(default="linear", validator=one_of(ALPHA_CURVES))
    # live seed parameters, as a fraction of host parameters, that use the whole budget (observation feature)
    param_budget: float = attrs.field(default=0.5, validator=within(0.0, 1000.0, low_open=True))


@attrs.frozen(kw_only=True)
class ActionsConfig:
    """The action space's value tables and which plugins the policy may choose among."""

    section: ClassVar[str] = "actions"

    # None = every registered blueprint that fits the host
    blueprints: tuple[str, ...] | None = attrs.field(
        default=None, validator=check(unique_nonempty, "must list at least one name, each once", optional=True)
    )
    # None = every registered blend style
    blend_styles: tuple[str, ...] | None = attrs.field(
        default=None, validator=check(unique_nonempty, "must list at least one name, each once", optional=True)
    )
    tempos: tuple[int, ...] = attrs.field(  # blending epochs
        default=(3, 5, 8),
        validator=check(
            lambda t: unique_nonempty(t) and all(isinstance(x, int) and x >= 0 for x in t),
            "must list distinct integers >= 0",
        ),
    )
    alpha_targets: tuple[float, ...] = attrs.field(
        default=(0.5, 0.7, 1.0),
        validator=check(
            lambda t: unique_nonempty(t) and all(is_number(x) and 0.0 < x <= 1.0 for x in t),
            "must list distinct numbers in (0, 1]",
        ),
    )


@attrs.frozen(kw_only=True)
class DeviceConfig:
    section: ClassVar[str] = "device"

    device: str = "auto"  # auto -> cuda if available else cpu
    devices: tuple[str, ...] = ()  # spread envs over these devices (overrides device)
    bf16: bool = True  # autocast for host training on CUDA
    channels_last: bool = True  # on CUDA
    compile: bool = False
    # Train the envs on a device as one wide network (esper_core.run.fused): "auto" fuses on CUDA (where
    # one after another the hosts leave the GPU launch-bound) and not on CPU; "on" / "off" force it.
    fused: str = attrs.field(default="auto", validator=one_of(("auto", "on", "off")))
    # CPU threads for torch (None = torch default); more than the machine has is cut to its CPU count
    threads: int | None = attrs.field(default=None, validator=int_within(1, MAX_THREADS, optional=True))


def _options_tables(value: Any) -> bool:
    return all(isinstance(name, str) and isinstance(table, dict) for name, table in value.items())


@attrs.frozen(kw_only=True)
class ObserversConfig:
    """Which observer plugins (metrics sinks such as ``tensorboard`` or ``wandb``) a run switches on.

    Observers only watch: switching one on or off never changes what a run computes. Each named observer's
    options are the table ``observers.options.<name>``, checked against its ``options_type``.
    """

    section: ClassVar[str] = "observers"

    enabled: tuple[str, ...] = attrs.field(  # observer plugin names, e.g. ["tensorboard"]; none by default
        default=(), validator=check(lambda t: len(set(t)) == len(t), "must name each observer once")
    )
    options: dict[str, Any] = attrs.field(  # observer name -> its options table
        factory=dict, converter=frozen_dict, validator=check(_options_tables, "must map observer names to tables")
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
