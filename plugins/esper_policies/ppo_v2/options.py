"""Every setting of the ``ppo_v2`` policy, in one class: ``policy.options.*`` in a config.

The algorithm owns its hyperparameters (the core has no PPO section): PPO's own (learning rate, GAE,
clipping, entropy, KL stop), the network's widths, how a rollout is split into gradient steps, and the
thresholds at which a diagnostic becomes a warning. The defaults and their reasons are in
``docs/design/ppo-lessons.md``.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from esper_core.api import (
    HEADS,
    HELP,
    above,
    at_least,
    head_table,
    int_at_least,
    int_within,
    is_number,
    one_of,
    within,
)


#: Largest feature / LSTM width (see ``feature_dim``).
MAX_WIDTH = 4096


def _default_entropy_coefs() -> dict[str, float]:
    # The sparse heads (chosen only on GERMINATE) get more: their entropy signal is diluted by every WAIT.
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
    # Every valid action keeps at least this probability, in sampling and in the update alike: the one
    # remedy for a sparse head collapsing to a single choice that keeps the policy gradient unbiased.
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


def _default_entropy_warn() -> dict[str, float]:
    # Normalised entropy over the steps where a head decides (relevant, > 1 valid entry). With the default
    # probability floors a healthy head stays far above these; hitting them means the floor is off or broken.
    return {head: 0.1 for head in HEADS}


def _over(defaults: Callable[[], dict[str, float]]) -> Callable[[Any], dict[str, float]]:
    """A per-head table given for some heads; the others keep their default (``[policy.options.prob_floors]
    op = 0.15`` must not silently drop every other head's floor)."""

    def convert(value: Any) -> dict[str, float]:
        return {**defaults(), **dict(value)}

    return convert


def _non_negative(value: Any) -> bool:
    return is_number(value) and value >= 0


def _unit_interval(value: Any) -> bool:
    return is_number(value) and 0 <= value < 1


def _help(text: str) -> dict[str, str]:
    return {HELP: text}


@attrs.frozen(kw_only=True)
class PPOV2Options:
    # ------------------------------------------------------------------------------------ PPO itself
    lr: float = attrs.field(
        default=3e-4, validator=within(0.0, 1.0, low_open=True), metadata=_help("Adam learning rate (policy and critic)")
    )
    gamma: float = attrs.field(
        default=0.995, validator=within(0.0, 1.0, low_open=True), metadata=_help("discount per env step (one host epoch)")
    )
    gae_lambda: float = attrs.field(
        default=0.97, validator=within(0.0, 1.0),
        metadata=_help("GAE lambda; with gamma 0.995 an effective horizon of about 33 steps"),
    )
    # In (0, 1): at 1 or more the lower clip bound 1 - clip_ratio is no bound at all.
    clip_ratio: float = attrs.field(
        default=0.2, validator=within(0.0, 1.0, low_open=True, high_open=True),
        metadata=_help("clip range of the joint ratio (the product of the relevant heads' ratios)"),
    )
    value_clip: float | None = attrs.field(
        default=None, validator=above(0.0, optional=True),
        metadata=_help("clip the value update to this distance from the stored values; unset: no value clipping"),
    )
    value_coef: float = attrs.field(default=1.0, validator=at_least(0.0), metadata=_help("weight of the value loss"))
    entropy_coef: float = attrs.field(
        default=0.01, validator=at_least(0.0),
        metadata=_help("global scale of the entropy bonus; per-head weights in entropy_coefs"),
    )
    entropy_coefs: dict[str, float] = attrs.field(
        factory=_default_entropy_coefs, converter=_over(_default_entropy_coefs),
        validator=head_table(_non_negative, "a number >= 0"),
        metadata=_help("per-head entropy weights (head -> weight >= 0; heads not named keep their default); "
                       "every head gets its bonus at every step"),
    )
    prob_floors: dict[str, float] = attrs.field(
        factory=_default_prob_floors, converter=_over(_default_prob_floors),
        validator=head_table(_unit_interval, "a number in [0, 1)"),
        metadata=_help("per-head probability floors (head -> value in [0, 1); heads not named keep their default); "
                       "applied when sampling and when replaying alike"),
    )
    target_kl: float = attrs.field(
        default=0.02, validator=above(0.0),
        metadata=_help("target approximate KL per update; the update stops early at kl_stop_factor times it"),
    )
    kl_stop_factor: float = attrs.field(
        default=1.5, validator=above(0.0), metadata=_help("early stop when the step KL passes this multiple of target_kl")
    )
    max_grad_norm: float = attrs.field(
        default=1.0, validator=above(0.0),
        metadata=_help("global gradient-norm clip (the pre-clip norm is logged: constant clipping is a bug)"),
    )
    update_epochs: int = attrs.field(
        default=1, validator=int_within(1, 100),
        metadata=_help("passes over each rollout (every pass replays whole episodes from their stored initial state, "
                       "so no hidden state is stale); see docs/design/ppo-lessons.md for what more passes bought"),
    )
    bptt_chunk: int | None = attrs.field(
        default=None, validator=int_at_least(1, optional=True),
        metadata=_help("truncated BPTT chunk in steps; unset: whole episodes"),
    )
    # Each sample is still used once per epoch, so hidden states never go stale; with a single group, the
    # default one epoch would be one Adam step per round (KL ~ 1e-8 at lr 3e-4).
    minibatches: int = attrs.field(
        default=4, validator=int_within(1, 4096),
        metadata=_help("gradient steps per epoch: the envs are split into this many groups of whole sequences "
                       "(at most one group per env)"),
    )
    critic_weight_decay: float = attrs.field(
        default=0.0, validator=at_least(0.0), metadata=_help("weight decay on the critic only (never on the actor heads)")
    )
    # Critic levers (issue 15: explained variance stayed near 0). Off by default until a study shows one helps.
    value_norm: bool = attrs.field(
        default=False,
        metadata=_help("critic predicts returns normalised by their running mean/std (kept in checkpoints); its "
                       "output layer is rescaled when the statistics move, so V(s) in return units is unchanged"),
    )
    critic_lr: float | None = attrs.field(
        default=None, validator=above(0.0, optional=True),
        metadata=_help("Adam learning rate of the critic head; unset: lr"),
    )
    critic_max_grad_norm: float | None = attrs.field(
        default=None, validator=above(0.0, optional=True),
        metadata=_help("clip the critic head's gradient norm on its own (it leaves the global clip); unset: the "
                       "critic is clipped with everything else at max_grad_norm"),
    )
    # "shared" by default (the network every checkpoint so far was saved with) until a study shows "own" helps.
    critic_trunk: str = attrs.field(
        default="shared", validator=one_of(("shared", "own")),
        metadata=_help("what the critic reads: 'shared', the actor's recurrent trunk (its value loss trains the LSTM "
                       "too); 'own', its own feed-forward trunk on the observation (blueprint embedding + feature "
                       "layer, no LSTM: the observation carries the step and the accuracy history), so it no longer "
                       "competes with the actor heads for the LSTM's features and no loss crosses between actor and "
                       "critic; critic_lr, critic_weight_decay and critic_max_grad_norm cover that trunk (set "
                       "critic_max_grad_norm too: in the global clip the critic's gradient norm still scales the "
                       "actor's step)"),
    )
    # On by default: without it the critic collapsed to one value for every state whenever the returns' mean sat
    # away from its output (issue 15; docs/design/ppo-lessons.md, "Value function collapse").
    critic_mean_fit: bool = attrs.field(
        default=True,
        metadata=_help("before the gradient steps, shift the critic's output bias by the rollout's mean of "
                       "(return - value): the critic never learns the returns' mean through its LayerNorm'd hidden "
                       "layers, which made them state-blind"),
    )

    # -------------------------------------------------------------------------------------- network
    # At most MAX_WIDTH: an LSTM of width w holds 8 w^2 weights (w = 4096: 134M, ~2 GB with Adam's state).
    feature_dim: int = attrs.field(
        default=512, validator=int_within(1, MAX_WIDTH),
        metadata=_help("width of the feature net (512 gives long episodes their memory; tests use 16-32)"),
    )
    lstm_dim: int = attrs.field(
        default=512, validator=int_within(1, MAX_WIDTH), metadata=_help("width of the LSTM")
    )
    blueprint_embed_dim: int = attrs.field(
        default=4, validator=int_within(1, 256), metadata=_help("learned blueprint embedding per slot in the observation")
    )
    # Off by default: the policy is tiny next to the host (act + update were ~2% of a round on the H100), and
    # in bf16 the update's replayed log-probs drift ~1e-2 from the acting ones, which blurs the ratio and
    # hides real replay bugs behind a looser tolerance.
    bf16: bool = attrs.field(default=False, metadata=_help("autocast the policy network to bfloat16 on CUDA"))

    # ----------------------------------------------------------------------------------- diagnostics
    entropy_warn: dict[str, float] = attrs.field(
        factory=_default_entropy_warn, converter=_over(_default_entropy_warn),
        validator=head_table(_non_negative, "a number >= 0"),
        metadata=_help("warn when a head's conditional normalised entropy falls below its threshold (head -> value)"),
    )
    ratio_warn: float = attrs.field(
        default=3.0, validator=above(1.0), metadata=_help("warn when a head's ratio (max, or 1/min) passes this")
    )
    ratio_critical: float = attrs.field(
        default=10.0, validator=above(1.0), metadata=_help("critical warning when a head's ratio (max, or 1/min) passes this")
    )
    unchanged_band: float = attrs.field(
        default=0.01, validator=at_least(0.0),
        metadata=_help("a head whose ratio stays within [1 - band, 1 + band] on every decision did not change: warn"),
    )
    grad_clip_warn_factor: float = attrs.field(
        default=10.0, validator=above(1.0),
        metadata=_help("warn when the pre-clip gradient norm exceeds this multiple of max_grad_norm (constant clipping)"),
    )
    saturation_warn: float = attrs.field(
        default=0.5, validator=within(0.0, 1.0),
        metadata=_help("warn when a clamped observation feature sits at its bound on more than this fraction of steps"),
    )
