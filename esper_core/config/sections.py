"""The run configuration: attrs classes, one per section. One source of truth for every default.

Precedence: defaults < preset < config file (TOML or JSON) < CLI flags. Loading, merging and the strict
cattrs converter live in ``esper_core.config.loading``.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Callable, ClassVar, Iterable

import attrs

from esper_core.ops import ALPHA_CURVES, HEADS
from esper_core.config.presets import PRESET_CHOICES


def _frozen_dict(value: Any) -> dict[str, Any]:
    return dict(value)


class SettingError(ValueError):
    """A setting outside its allowed values. Carries the field so a loader can name the full key path."""

    def __init__(self, section: str, field: str, reason: str, value: Any, key: str | None = None) -> None:
        self.section = section
        self.field = field
        self.key = key  # the offending entry of a table-valued field, if that is what is wrong
        self.reason = f"{reason} (got {value!r})"
        super().__init__(f"{section}.{field}{'.' + key if key is not None else ''}: {self.reason}")


_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _check(test: Callable[[Any], bool], reason: str, optional: bool = False) -> _Validator:
    """An attrs validator that raises ``SettingError`` naming ``<section>.<field>``."""

    def validate(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
        if optional and value is None:
            return
        try:
            ok = test(value)
        except TypeError:  # a wrongly typed value given in Python code; the loader checks types first
            ok = False
        if not ok:
            raise SettingError(type(instance).section, attribute.name, reason, value)

    return validate


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(minimum: int, optional: bool = False) -> _Validator:
    return _check(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
        f"must be an integer >= {minimum}" + (" or unset (None)" if optional else ""),
        optional,
    )


def _at_least(minimum: float, optional: bool = False) -> _Validator:
    return _check(lambda v: _number(v) and v >= minimum, f"must be a number >= {minimum}", optional)


def _above(minimum: float, optional: bool = False) -> _Validator:
    return _check(lambda v: _number(v) and v > minimum, f"must be a number > {minimum}", optional)


def _within(low: float, high: float, low_open: bool = False, high_open: bool = False) -> _Validator:
    left, right = "(" if low_open else "[", ")" if high_open else "]"

    def test(v: Any) -> bool:
        return (
            _number(v)
            and (v > low if low_open else v >= low)
            and (v < high if high_open else v <= high)
        )

    return _check(test, f"must be in {left}{low}, {high}{right}")


def _one_of(choices: Iterable[str]) -> _Validator:
    allowed = tuple(choices)
    return _check(lambda v: v in allowed, f"must be one of {', '.join(allowed)}")


def _unique_nonempty(items: Any) -> bool:
    return len(items) > 0 and len(set(items)) == len(items)


def _head_table(value_test: Callable[[Any], bool], reason: str) -> _Validator:
    """A per-head table: keys must be action heads (a misspelt head would silently do nothing)."""

    def validate(instance: Any, attribute: "attrs.Attribute[Any]", table: Any) -> None:
        section = type(instance).section
        for key, value in table.items():
            if key not in HEADS:
                close = difflib.get_close_matches(str(key), HEADS, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise SettingError(section, attribute.name, f"not an action head; {hint}heads: {', '.join(HEADS)}", key, key)
            if not value_test(value):
                raise SettingError(section, attribute.name, f"must be {reason}", value, key)

    return validate


def _run_name(value: Any) -> bool:
    return isinstance(value, str) and value not in {"", ".", ".."} and "/" not in value and "\\" not in value


_positive = _int_at_least(1)
_non_negative_int = _int_at_least(0)


@attrs.frozen(kw_only=True)
class RunConfig:
    section: ClassVar[str] = "run"

    name: str | None = attrs.field(  # run directory name under run_dir; default: a timestamp
        default=None, validator=_check(_run_name, "must be a plain directory name (no '/')", optional=True)
    )
    run_dir: str = "runs"
    seed: int = attrs.field(default=0, validator=_non_negative_int)
    preset: str = attrs.field(  # auto -> "cpu-quick" without CUDA, "gpu" with it
        default="auto", validator=_one_of(PRESET_CHOICES)
    )
    rounds: int = attrs.field(default=4, validator=_positive)  # a round = one episode in every env, then one policy update
    envs: int = attrs.field(default=2, validator=_positive)
    episode_length: int = attrs.field(default=12, validator=_positive)  # env steps (host epochs) per episode
    checkpoint_every: int = attrs.field(default=1, validator=_positive)  # rounds


@attrs.frozen(kw_only=True)
class TaskConfig:
    section: ClassVar[str] = "task"

    name: str = "auto"
    data_dir: str = "data"
    download: bool = False
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen(kw_only=True)
class HostConfig:
    section: ClassVar[str] = "host"

    name: str = "resnet"
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen(kw_only=True)
class PolicyConfig:
    section: ClassVar[str] = "policy"

    name: str = "ppo_v2"
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen(kw_only=True)
class RewardConfig:
    section: ClassVar[str] = "reward"

    name: str = "contribution"
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen(kw_only=True)
class TrainingConfig:
    """How the host (and its seeds) train within one env step (= one epoch)."""

    section: ClassVar[str] = "training"

    batch_size: int = attrs.field(default=128, validator=_positive)
    lr: float = attrs.field(default=0.05, validator=_at_least(0.0))
    momentum: float = attrs.field(default=0.9, validator=_within(0.0, 1.0, high_open=True))
    weight_decay: float = attrs.field(default=5e-4, validator=_at_least(0.0))
    seed_lr: float = attrs.field(default=0.05, validator=_at_least(0.0))
    # Proximal pull on a TRAINING seed's output (see esper_core.growth.slot): without it the isolated seed follows a
    # linearised loss with no minimum and its output grows without bound. 0 turns it off.
    seed_proximal: float = attrs.field(default=3.0, validator=_at_least(0.0))
    # training samples per epoch; None = the whole train split
    epoch_samples: int | None = attrs.field(default=None, validator=_int_at_least(1, optional=True))
    # validation samples used per step; None = the whole val split
    val_samples: int | None = attrs.field(default=None, validator=_int_at_least(1, optional=True))
    eval_batch_size: int = attrs.field(default=512, validator=_positive)


@attrs.frozen(kw_only=True)
class LifecycleConfig:
    """Gates of the seed lifecycle (named thresholds; the masks and the executor both enforce them)."""

    section: ClassVar[str] = "lifecycle"

    # epochs in TRAINING before ADVANCE to BLENDING
    min_training_epochs: int = attrs.field(default=2, validator=_non_negative_int)
    min_prune_age: int = attrs.field(default=3, validator=_non_negative_int)  # seed age before PRUNE
    embargo_epochs: int = attrs.field(default=2, validator=_non_negative_int)  # epochs a pruned slot stays EMBARGOED
    # epochs in RESETTING before the slot is DORMANT again
    resetting_epochs: int = attrs.field(default=1, validator=_non_negative_int)
    max_seeds: int = attrs.field(default=3, validator=_positive)  # live seeds at once
    # alpha curve used when a germinated seed starts blending
    germinate_curve: str = attrs.field(default="linear", validator=_one_of(ALPHA_CURVES))
    # live seed parameters, as a fraction of host parameters, that use the whole budget (observation feature)
    param_budget: float = attrs.field(default=0.5, validator=_check(lambda v: v > 0, "must be > 0"))


@attrs.frozen(kw_only=True)
class ActionsConfig:
    """The action space's value tables and which plugins the policy may choose among."""

    section: ClassVar[str] = "actions"

    # None = every registered blueprint that fits the host
    blueprints: tuple[str, ...] | None = attrs.field(
        default=None, validator=_check(_unique_nonempty, "must list at least one name, each once", optional=True)
    )
    # None = every registered blend style
    blend_styles: tuple[str, ...] | None = attrs.field(
        default=None, validator=_check(_unique_nonempty, "must list at least one name, each once", optional=True)
    )
    tempos: tuple[int, ...] = attrs.field(  # blending epochs
        default=(3, 5, 8),
        validator=_check(
            lambda t: _unique_nonempty(t) and all(isinstance(x, int) and x >= 0 for x in t),
            "must list distinct integers >= 0",
        ),
    )
    alpha_targets: tuple[float, ...] = attrs.field(
        default=(0.5, 0.7, 1.0),
        validator=_check(
            lambda t: _unique_nonempty(t) and all(_number(x) and 0.0 < x <= 1.0 for x in t),
            "must list distinct numbers in (0, 1]",
        ),
    )


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

    section: ClassVar[str] = "ppo"

    lr: float = attrs.field(default=3e-4, validator=_above(0.0))
    gamma: float = attrs.field(default=0.995, validator=_within(0.0, 1.0, low_open=True))
    gae_lambda: float = attrs.field(default=0.97, validator=_within(0.0, 1.0))
    clip_ratio: float = attrs.field(default=0.2, validator=_above(0.0))
    value_clip: float | None = attrs.field(default=None, validator=_above(0.0, optional=True))  # None = no clipping
    value_coef: float = attrs.field(default=1.0, validator=_at_least(0.0))
    entropy_coef: float = attrs.field(default=0.01, validator=_at_least(0.0))  # global scale; per-head below
    entropy_coefs: dict[str, float] = attrs.field(
        factory=_default_entropy_coefs, converter=_frozen_dict, validator=_head_table(lambda v: _number(v) and v >= 0, "a number >= 0")
    )
    prob_floors: dict[str, float] = attrs.field(
        factory=_default_prob_floors,
        converter=_frozen_dict,
        validator=_head_table(lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    )
    target_kl: float = attrs.field(default=0.02, validator=_above(0.0))
    kl_stop_factor: float = attrs.field(default=1.5, validator=_above(0.0))
    max_grad_norm: float = attrs.field(default=1.0, validator=_above(0.0))
    update_epochs: int = attrs.field(default=1, validator=_positive)
    bptt_chunk: int | None = attrs.field(default=None, validator=_int_at_least(1, optional=True))  # None = full episodes
    feature_dim: int = attrs.field(default=512, validator=_positive)
    lstm_dim: int = attrs.field(default=512, validator=_positive)
    blueprint_embed_dim: int = attrs.field(default=4, validator=_positive)
    critic_weight_decay: float = attrs.field(default=0.0, validator=_at_least(0.0))
    # Autocast the policy network on CUDA. Off by default: the policy is tiny next to the host (act + update
    # were ~2% of a round on the H100), and in bf16 the update's replayed log-probs drift ~1e-2 from the
    # acting ones, which blurs the ratio and hides real replay bugs behind a looser tolerance.
    bf16: bool = False


@attrs.frozen(kw_only=True)
class DeviceConfig:
    section: ClassVar[str] = "device"

    device: str = "auto"  # auto -> cuda if available else cpu
    devices: tuple[str, ...] = ()  # spread envs over these devices (overrides device)
    bf16: bool = True  # autocast for host training on CUDA
    channels_last: bool = True  # on CUDA
    compile: bool = False
    threads: int | None = attrs.field(default=None, validator=_int_at_least(1, optional=True))  # None = torch default


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
