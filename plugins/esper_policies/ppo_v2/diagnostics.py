"""What one update reports (a flat dict for metrics.jsonl) and the warnings that catch known failures.

Ratio, clip fraction and KL are measured *after* the update (the policy that will act next against the
one that acted): during a one-epoch update the ratio is 1 by construction and says nothing. Per-head
statistics are taken over a head's *decisions*: steps where it was causally relevant and had more than
one valid entry (a forced choice has entropy 0 and ratio 1 and would only dilute the signal; see
docs/design/ppo-lessons.md, "Conditional entropy": sparse heads look ~20x healthier averaged over all
steps). ``None`` marks a statistic with no sample (see the matching ``decisions/<head>`` count).

All statistics are built as device tensors and moved to the host in one transfer.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from esper_core.rl.masks import head_relevance
from esper_core.ops import HEADS, Op

from esper_policies.ppo_v2.options import PPOV2Options
from esper_policies.ppo_v2.update import LOG_RATIO_LIMIT, Evaluation, TrainStats, UpdateInputs, runs_in_bf16

#: Joint KL below this after an update means the policy did not move (docs/design/ppo-lessons.md, "KL near
#: zero and clip fraction zero are alarms": KL ~ 1e-9 in a collapsed run; healthy is 1e-2 to 5e-2).
KL_NEAR_ZERO = 1e-6
#: Replayed log-probs of the acting parameters must match the stored ones (else: stale recurrent state,
#: recomputed masks or different inputs). In float32 they agree to ~1e-6 (H100, default widths).
REPLAY_TOLERANCE = 1e-3
#: Under bf16 autocast the step-by-step acting pass and the whole-sequence replay round differently:
#: up to 1.1e-2 was measured on an H100 at default widths with nothing wrong. At this tolerance the check
#: only catches gross mismatches (a stale recurrent state in a fresh default-width net moved log-probs by
#: just 1.5e-2 there), one reason the policy runs in float32 unless ``policy.options.bf16`` is set.
REPLAY_TOLERANCE_BF16 = 3e-2


def replay_tolerance(bf16: bool, device: torch.device) -> float:
    """How far replayed log-probs may drift from the stored ones before ``replay_mismatch`` warns."""
    return REPLAY_TOLERANCE_BF16 if runs_in_bf16(device, bf16) else REPLAY_TOLERANCE


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum()
    return torch.where(mask, values, 0.0).sum() / count.clamp(min=1)


def _var(x: torch.Tensor) -> torch.Tensor:
    return x.float().var(unbiased=False) if x.numel() > 1 else torch.zeros((), device=x.device)


def compute_diagnostics(
    inputs: UpdateInputs,
    after: Evaluation,
    train: TrainStats,
    *,
    options: PPOV2Options,
    feature_names: Sequence[str],
    saturation: torch.Tensor,
    extra: dict[str, float] | None = None,
) -> dict[str, Any]:
    """``saturation`` [D]: per feature, the fraction of the rollout's raw values on an artificial clamp bound."""
    scalars: dict[str, torch.Tensor] = {}
    ops = inputs.actions[..., 0]
    relevance = head_relevance(ops)

    # ------------------------------------------------------------------------ per head
    head_log_ratio = (after.log_probs - inputs.old_log_probs).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    head_ratio = head_log_ratio.exp()
    for i, head in enumerate(HEADS):
        n_valid = inputs.masks[head].sum(-1)
        decision = relevance[..., i] & (n_valid > 1)
        ratio, log_ratio = head_ratio[..., i], head_log_ratio[..., i]
        scalars[f"entropy/{head}"] = after.entropy[..., i].mean()
        scalars[f"entropy_relevant/{head}"] = _masked_mean(after.entropy[..., i], decision)
        scalars[f"decisions/{head}"] = decision.sum().float()
        scalars[f"ratio_min/{head}"] = torch.where(decision, ratio, torch.inf).amin()
        scalars[f"ratio_mean/{head}"] = _masked_mean(ratio, decision)
        scalars[f"ratio_max/{head}"] = torch.where(decision, ratio, -torch.inf).amax()
        scalars[f"clip_fraction/{head}"] = _masked_mean(((ratio - 1.0).abs() > options.clip_ratio).float(), decision)
        scalars[f"approx_kl/{head}"] = _masked_mean(ratio - 1.0 - log_ratio, decision)
        scalars[f"kl_samples/{head}"] = decision.sum().float()

    # ------------------------------------------------------------------------ joint policy
    joint = torch.where(relevance, head_log_ratio, 0.0).sum(-1).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    joint_ratio = joint.exp()
    scalars["approx_kl"] = (joint_ratio - 1.0 - joint).mean()
    scalars["joint_clip_fraction"] = ((joint_ratio - 1.0).abs() > options.clip_ratio).float().mean()
    scalars["joint_ratio_min"] = joint_ratio.amin()
    scalars["joint_ratio_max"] = joint_ratio.amax()
    for op in Op:
        scalars[f"op_fraction/{op.name}"] = (ops == int(op)).float().mean()

    # ------------------------------------------------------------------------ critic
    returns, old_values = inputs.returns.float(), inputs.old_values.float()
    var_returns = _var(returns)
    scalars["explained_variance"] = 1.0 - _var(returns - old_values) / var_returns.clamp(min=1e-12)
    scalars["explained_variance_after"] = 1.0 - _var(returns - after.values.float()) / var_returns.clamp(min=1e-12)
    scalars["_returns_var"] = var_returns
    scalars["value_mean"] = old_values.mean()
    scalars["value_std"] = _var(old_values).sqrt()
    scalars["return_mean"] = returns.mean()
    scalars["return_std"] = var_returns.sqrt()
    scalars["advantage_mean_raw"] = inputs.raw_advantages.float().mean()
    scalars["advantage_std_raw"] = _var(inputs.raw_advantages).sqrt()

    # ------------------------------------------------------------------------ Q(s, op) diagnostic
    op_mask = inputs.masks["op"]
    q = after.q.float()
    several = op_mask.sum(-1) > 1
    spread = torch.where(op_mask, q, -torch.inf).amax(-1) - torch.where(op_mask, q, torch.inf).amin(-1)
    scalars["q_spread"] = _masked_mean(torch.where(several, spread, 0.0), several)
    for op in Op:
        scalars[f"q_mean/{op.name}"] = q[..., int(op)].mean()

    # ------------------------------------------------------------------------ optimisation
    steps = max(1, train.gradient_steps)
    for key, value in train.sums.items():
        if key in scalars:
            raise KeyError(f"training statistic {key!r} would overwrite the post-update diagnostic of that name")
        if key != "nonfinite":
            scalars[key] = value if key.endswith("_max") else value / steps
    scalars["replay_log_prob_error"] = train.replay_error
    scalars["critic_mean_shift"] = train.critic_mean_shift

    # ------------------------------------------------------------------------ observation clamps
    scalars["obs_saturation_max"] = saturation.max()
    scalars["_obs_saturation_argmax"] = saturation.argmax().float()

    names = list(scalars)
    values = torch.stack([scalars[n].detach().float().reshape(()) for n in names]).tolist()  # the one transfer
    flat: dict[str, Any] = dict(zip(names, values))
    flat["gradient_steps"] = train.gradient_steps
    flat["epochs_completed"] = train.epochs_completed
    flat["kl_early_stop"] = int(train.early_stopped)
    flat.update(extra or {})
    worst_feature = feature_names[int(flat.pop("_obs_saturation_argmax"))]
    returns_var = flat.pop("_returns_var")
    for head in HEADS:
        if flat[f"decisions/{head}"] == 0:
            for key in ("entropy_relevant", "ratio_min", "ratio_mean", "ratio_max", "clip_fraction", "approx_kl"):
                flat[f"{key}/{head}"] = None
    if returns_var < 1e-12:
        flat["explained_variance"] = flat["explained_variance_after"] = None
    flat["warnings"] = _warnings(flat, options, worst_feature, replay_tolerance(options.bf16, ops.device))
    return flat


def _warnings(
    flat: dict[str, Any], options: PPOV2Options, worst_feature: str, replay_limit: float
) -> list[str]:
    found: list[str] = []
    band = options.unchanged_band
    for head in HEADS:
        n = int(flat[f"decisions/{head}"])
        if n == 0:
            continue
        entropy = flat[f"entropy_relevant/{head}"]
        threshold = options.entropy_warn.get(head, 0.0)
        if entropy < threshold:
            found.append(
                f"entropy_low[{head}]: conditional entropy {entropy:.4f} < {threshold:.3f} over {n} decision(s) "
                "(sparse-head collapse; check the probability floor)"
            )
        high = max(flat[f"ratio_max/{head}"], 1.0 / max(flat[f"ratio_min/{head}"], 1e-30))
        if high > options.ratio_critical:
            found.append(f"ratio_critical[{head}]: per-head ratio reached {high:.3g} (> {options.ratio_critical:g})")
        elif high > options.ratio_warn:
            found.append(f"ratio_high[{head}]: per-head ratio reached {high:.3g} (> {options.ratio_warn:g})")
        if flat[f"ratio_min/{head}"] >= 1.0 - band and flat[f"ratio_max/{head}"] <= 1.0 + band:
            found.append(
                f"head_unchanged[{head}]: ratio within [{1 - band:.2f}, {1 + band:.2f}] on all {n} decision(s)"
            )
    joint_high = max(flat["joint_ratio_max"], 1.0 / max(flat["joint_ratio_min"], 1e-30))
    if joint_high > options.ratio_critical:
        found.append(f"ratio_critical[joint]: joint ratio reached {joint_high:.3g} (> {options.ratio_critical:g})")
    elif joint_high > options.ratio_warn:
        found.append(f"ratio_high[joint]: joint ratio reached {joint_high:.3g} (> {options.ratio_warn:g})")
    if flat["approx_kl"] < KL_NEAR_ZERO:
        found.append(f"kl_near_zero: joint approx KL {flat['approx_kl']:.2e} after the update (the policy did not move)")
    grad = flat.get("grad_norm")
    if grad is not None and grad > options.grad_clip_warn_factor * options.max_grad_norm:
        found.append(
            f"grad_clipped_hard: pre-clip gradient norm {grad:.3g} is > {options.grad_clip_warn_factor:g}x "
            f"options.max_grad_norm={options.max_grad_norm:g} (updates shrink to a few percent)"
        )
    if flat["replay_log_prob_error"] > replay_limit:
        found.append(
            f"replay_mismatch: replayed log-probs differ from the stored ones by up to {flat['replay_log_prob_error']:.3g} "
            f"(> {replay_limit:g}) before any step (stale recurrent state, recomputed masks or changed inputs)"
        )
    if flat["obs_saturation_max"] > options.saturation_warn:
        found.append(
            f"obs_clamp_saturated[{worst_feature}]: at its clamp bound on {flat['obs_saturation_max']:.0%} of steps"
        )
    return found
