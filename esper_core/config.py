"""The run configuration: attrs classes, one per section. One source of truth for every default.

Precedence: defaults < preset < config file (TOML or JSON) < CLI flags. Loading, merging and the strict
cattrs converter live in ``esper_core.config_loading``.
"""

from __future__ import annotations

from typing import Any

import attrs


def _frozen_dict(value: Any) -> dict[str, Any]:
    return dict(value)


@attrs.frozen(kw_only=True)
class RunConfig:
    name: str | None = None  # run directory name under run_dir; default: a timestamp
    run_dir: str = "runs"
    seed: int = 0
    preset: str = "auto"  # auto -> "cpu-quick" without CUDA, "gpu" with it
    rounds: int = 4  # a round = one episode in every env, then one policy update
    envs: int = 2
    episode_length: int = 12  # env steps (host epochs) per episode
    checkpoint_every: int = 1  # rounds


@attrs.frozen(kw_only=True)
class TaskConfig:
    name: str = "auto"
    data_dir: str = "data"
    download: bool = False
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen(kw_only=True)
class HostConfig:
    name: str = "resnet"
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen(kw_only=True)
class PolicyConfig:
    name: str = "ppo_v2"
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen(kw_only=True)
class RewardConfig:
    name: str = "contribution"
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen(kw_only=True)
class TrainingConfig:
    """How the host (and its seeds) train within one env step (= one epoch)."""

    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed_lr: float = 0.05
    epoch_samples: int | None = None  # training samples per epoch; None = the whole train split
    val_samples: int | None = None  # validation samples used per step; None = the whole val split
    eval_batch_size: int = 512


@attrs.frozen(kw_only=True)
class LifecycleConfig:
    """Gates of the seed lifecycle (named thresholds; the masks and the executor both enforce them)."""

    min_training_epochs: int = 2  # epochs in TRAINING before ADVANCE to BLENDING
    min_prune_age: int = 3  # seed age (epochs since germination) before PRUNE
    embargo_epochs: int = 2  # epochs a pruned slot stays EMBARGOED
    resetting_epochs: int = 1  # epochs in RESETTING before the slot is DORMANT again
    max_seeds: int = 3  # live seeds at once
    germinate_curve: str = "linear"  # alpha curve used when a germinated seed starts blending
    param_budget: float = 0.5  # live seed parameters as a fraction of host parameters that uses the whole budget


@attrs.frozen(kw_only=True)
class ActionsConfig:
    """The action space's value tables and which plugins the policy may choose among."""

    blueprints: tuple[str, ...] | None = None  # None = every registered blueprint that fits the host
    blend_styles: tuple[str, ...] | None = None  # None = every registered blend style
    tempos: tuple[int, ...] = (3, 5, 8)  # blending epochs
    alpha_targets: tuple[float, ...] = (0.5, 0.7, 1.0)


def _default_entropy_coefs() -> dict[str, float]:
    return {
        "op": 1.0,
        "slot": 1.0,
        "blueprint": 1.3,
        "tempo": 1.3,
        "style": 1.2,
        "alpha_target": 1.2,
        "alpha_speed": 1.2,
        "alpha_curve": 1.2,
    }


def _default_prob_floors() -> dict[str, float]:
    return {
        "op": 0.02,
        "slot": 0.03,
        "blueprint": 0.10,
        "tempo": 0.10,
        "style": 0.05,
        "alpha_target": 0.05,
        "alpha_speed": 0.05,
        "alpha_curve": 0.05,
    }


@attrs.frozen(kw_only=True)
class PPOConfig:
    """Hyperparameters for learning policies (ppo_v2). Defaults from DESIGN-NOTES."""

    lr: float = 3e-4
    gamma: float = 0.995
    gae_lambda: float = 0.97
    clip_ratio: float = 0.2
    value_clip: float | None = None  # None = no value clipping
    value_coef: float = 1.0
    entropy_coef: float = 0.01  # global scale; per-head multipliers below
    entropy_coefs: dict[str, float] = attrs.field(factory=_default_entropy_coefs, converter=_frozen_dict)
    prob_floors: dict[str, float] = attrs.field(factory=_default_prob_floors, converter=_frozen_dict)
    target_kl: float = 0.02
    kl_stop_factor: float = 1.5
    max_grad_norm: float = 1.0
    update_epochs: int = 1
    bptt_chunk: int | None = None  # None = full-episode sequences
    feature_dim: int = 512
    lstm_dim: int = 512
    blueprint_embed_dim: int = 4
    critic_weight_decay: float = 0.0
    bf16: bool = True  # autocast on CUDA only


@attrs.frozen(kw_only=True)
class DeviceConfig:
    device: str = "auto"  # auto -> cuda if available else cpu
    devices: tuple[str, ...] = ()  # spread envs over these devices (overrides device)
    bf16: bool = True  # autocast for host training on CUDA
    channels_last: bool = True  # on CUDA
    compile: bool = False
    threads: int | None = None  # torch CPU threads; None = torch's default


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
    ppo: PPOConfig = attrs.field(factory=PPOConfig)
    device: DeviceConfig = attrs.field(factory=DeviceConfig)
