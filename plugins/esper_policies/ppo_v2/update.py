"""One PPO update of the recurrent factored policy from one rollout (why it is shaped this way:
``docs/design/ppo-lessons.md``, "Factored PPO").

- Sequences are replayed from the rollout's stored initial recurrent state, whole episodes by default
  (``bptt_chunk``: truncated BPTT, the state detached between chunks and gradients accumulated, so
  memory is bounded by one chunk while each gradient step still sees whole sequences).
- Actions are evaluated under the **stored** masks with the same probability floors as when acting.
- Per-head advantages (advantage x causal relevance) meet a ratio whose *value* is the joint ratio (sum
  of the relevant heads' log-ratios, clipped as a whole) and whose gradient reaches only that head's
  log-probability: the gradient equals the joint clipped surrogate's, and a head gets nothing from a step
  on which it did not matter.
- The entropy bonus covers every head at every step (per-head coefficients), relevant or not.
- KL (joint, i.e. masked by relevance) is checked at every gradient step: above ``kl_stop_factor x
  target_kl`` the step is dropped and the update stops. That decision is the one host sync per step.
- The op-conditioned Q head trains on the returns from a detached trunk, clipped on its own, so it
  never moves the policy or the critic.
- Before the gradient steps the critic's output bias absorbs the rollout's mean of (return - value)
  (``critic_mean_fit``, ``fit_critic_mean``): the gradient is left only the state-dependent part.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import attrs
import torch
from torch import nn

from esper_core.rl.advantages import clipped_surrogate, gae, joint_log_ratio, normalise_advantages, per_head_advantages
from esper_core.ops import HEADS
from esper_core.rl.sampling import evaluate_actions

from esper_policies.ppo_v2.network import NetworkOutput, PolicyNetwork, State, segment_starts
from esper_policies.ppo_v2.options import PPOV2Options
from esper_policies.ppo_v2.stored import StoredLayout
from esper_policies.ppo_v2.value_norm import ValueNormaliser

#: Log-ratios are clamped to +-this before exp(): a numerical guard (ratio <= 4.9e8) so an exploded
#: ratio can never turn into inf * 0 = NaN; far outside any clip range, and flagged by the diagnostics.
LOG_RATIO_LIMIT = 20.0


@attrs.frozen(eq=False)
class UpdateInputs:
    """Everything the update reads, time-major [T, E, ...], on the policy's device."""

    features: torch.Tensor  # normalised, as acted on
    raw_features: torch.Tensor
    blueprint_index: torch.Tensor
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    masks: dict[str, torch.Tensor]
    old_values: torch.Tensor
    raw_advantages: torch.Tensor
    advantages: torch.Tensor  # normalised once for the whole update
    returns: torch.Tensor
    reset_before: torch.Tensor
    initial_state: State
    segment_starts: list[int]

    @property
    def n_steps(self) -> int:
        return self.actions.shape[0]

    @property
    def n_envs(self) -> int:
        return self.actions.shape[1]


def prepare_inputs(rollout: Any, layout: StoredLayout, gamma: float, lam: float, device: torch.device) -> UpdateInputs:
    """Validate the rollout, split the stored rows, and compute GAE per env (done: no bootstrap,
    truncated: bootstrap with the stored V(s'))."""
    rollout.validate()
    stored = layout.unpack(rollout.obs.to(device))
    state = tuple(rollout.initial_state)
    if len(state) != 2:
        raise ValueError(
            "ppo_v2 replays sequences from the rollout's initial recurrent state; store it with "
            f"rollout.set_initial_state(policy.initial_state(...) or the state before step 0) (got {len(state)} tensor(s))"
        )
    dones, truncated = rollout.dones.to(device), rollout.truncated.to(device)
    ended = dones | truncated
    if bool(ended[-1].all()):
        advantages, returns = gae(
            rollout.rewards.to(device), rollout.values.to(device), dones, truncated,
            rollout.bootstrap_values.to(device), torch.zeros_like(rollout.values[0], device=device), gamma, lam,
        )
    elif getattr(rollout, "advantages", None) is not None and getattr(rollout, "returns", None) is not None:
        # The collector cut the rollout mid-episode and bootstrapped it itself with V(s_T).
        advantages, returns = rollout.advantages.to(device), rollout.returns.to(device)
    else:
        raise ValueError(
            "the rollout's last step neither ends every env's episode (dones) nor is marked truncated (with "
            "bootstrap_values); either do that, or call rollout.compute_returns(V(s_T), gamma, lam) first"
        )
    reset_before = torch.zeros_like(ended)
    reset_before[1:] = ended[:-1]
    return UpdateInputs(
        features=stored.normalised,
        raw_features=stored.raw,
        blueprint_index=stored.blueprint_index,
        actions=rollout.actions.to(device),
        old_log_probs=rollout.log_probs.to(device),
        masks={h: rollout.masks[h].to(device) for h in HEADS},
        old_values=rollout.values.to(device),
        raw_advantages=advantages,
        advantages=normalise_advantages(advantages),
        returns=returns,
        reset_before=reset_before,
        initial_state=(state[0].to(device).float(), state[1].to(device).float()),
        segment_starts=segment_starts(reset_before),
    )


@attrs.frozen(eq=False)
class Evaluation:
    """The current network on stored data: per-head log-probs and entropies [T, B, H], values [T, B],
    Q [T, B, n_ops]."""

    log_probs: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor
    q: torch.Tensor


@attrs.frozen(eq=False)
class TrainStats:
    """Accumulated over gradient steps (device tensors) plus host counters."""

    sums: dict[str, torch.Tensor]  # summed over gradient steps (keys ending in "_max": the maximum)
    gradient_steps: int
    epochs_completed: float
    early_stopped: bool
    replay_error: torch.Tensor
    critic_mean_shift: torch.Tensor  # what fit_critic_mean moved V(s) by, in return units (0 when off)


def runs_in_bf16(device: torch.device, bf16: bool) -> bool:
    """``bf16`` takes effect on CUDA only (no autocast elsewhere)."""
    return bf16 and device.type == "cuda"


def autocast_context(device: torch.device, bf16: bool) -> Any:
    if runs_in_bf16(device, bf16):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _select(tensor: torch.Tensor, t0: int, t1: int, envs: torch.Tensor) -> torch.Tensor:
    return tensor[t0:t1].index_select(1, envs)


class PPOUpdate:
    """Runs the epochs and gradient steps of one update; returns raw statistics for the diagnostics."""

    def __init__(
        self,
        network: PolicyNetwork,
        optimizer: torch.optim.Optimizer,
        options: PPOV2Options,
        floors: dict[str, float],
        generator: torch.Generator,
        value_norm: ValueNormaliser | None = None,
    ) -> None:
        self.network, self.optimizer, self.options = network, optimizer, options
        self.floors, self.generator = floors, generator
        self.value_norm = value_norm  # None: the critic predicts returns as they are
        groups = network.parameter_groups()
        self.groups = groups
        # With critic_max_grad_norm the critic head is clipped on its own, like the Q head always is.
        apart = {"q", "critic"} if options.critic_max_grad_norm is not None else {"q"}
        self.main_params = [p for name, ps in groups.items() if name not in apart for p in ps]
        self.q_params = groups["q"]
        self.critic_params = groups["critic"]

    # ------------------------------------------------------------------------------------ evaluation
    def evaluate(
        self, inputs: UpdateInputs, envs: torch.Tensor, t0: int, t1: int, state: State
    ) -> tuple[Evaluation, State]:
        starts = [0] + [s - t0 for s in inputs.segment_starts if t0 < s < t1]
        device = inputs.actions.device
        with autocast_context(device, self.options.bf16):
            out, state = self.network.unroll(
                _select(inputs.features, t0, t1, envs),
                _select(inputs.blueprint_index, t0, t1, envs),
                state,
                _select(inputs.reset_before, t0, t1, envs),
                starts,
            )
        return self._score(out, inputs, envs, t0, t1), state

    def _score(self, out: NetworkOutput, inputs: UpdateInputs, envs: torch.Tensor, t0: int, t1: int) -> Evaluation:
        actions = _select(inputs.actions, t0, t1, envs)
        masks = {h: _select(inputs.masks[h], t0, t1, envs) for h in HEADS}
        log_probs, entropy = evaluate_actions(out.logits, actions, masks, self.floors)
        return Evaluation(log_probs=log_probs, entropy=entropy, values=out.value, q=out.q)

    def evaluate_all(self, inputs: UpdateInputs) -> Evaluation:
        """The whole rollout under the current parameters (no gradient): for the diagnostics."""
        envs = torch.arange(inputs.n_envs, device=inputs.actions.device)
        with torch.no_grad():
            evaluation, _ = self.evaluate(inputs, envs, 0, inputs.n_steps, inputs.initial_state)
        if self.value_norm is not None:
            evaluation = attrs.evolve(evaluation, values=self.value_norm.denormalise(evaluation.values.float()))
        return evaluation

    # ----------------------------------------------------------------------------------------- losses
    def _losses(self, ev: Evaluation, inputs: UpdateInputs, envs: torch.Tensor, t0: int, t1: int) -> dict[str, torch.Tensor]:
        """Sums over the chunk's samples (the caller divides by the minibatch's sample count)."""
        opts = self.options
        actions = _select(inputs.actions, t0, t1, envs)
        ops = actions[..., 0]
        old_log_probs = _select(inputs.old_log_probs, t0, t1, envs)
        advantages = _select(inputs.advantages, t0, t1, envs)
        returns = _select(inputs.returns, t0, t1, envs)
        old_values = _select(inputs.old_values, t0, t1, envs)
        q_targets = returns
        if self.value_norm is not None:  # the critic head works in normalised units (value_norm.py)
            returns, old_values = self.value_norm.normalise(returns), self.value_norm.normalise(old_values)

        head_log_ratio = ev.log_probs - old_log_probs
        joint = joint_log_ratio(ev.log_probs, old_log_probs, ops).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
        # Value: the joint log-ratio; gradient: only through each head's own log-probability.
        head_view = head_log_ratio + (joint.unsqueeze(-1) - head_log_ratio).detach()
        head_advantages = per_head_advantages(advantages, ops)
        surrogate = clipped_surrogate(head_view, head_advantages, opts.clip_ratio)

        values = ev.values
        if opts.value_clip is not None:
            clipped = old_values + (values - old_values).clamp(-opts.value_clip, opts.value_clip)
            value_err = torch.maximum((values - returns).square(), (clipped - returns).square())
        else:
            value_err = (values - returns).square()
        coefs = torch.tensor([float(opts.entropy_coefs.get(h, 1.0)) for h in HEADS], device=values.device)
        weighted_entropy = (ev.entropy * coefs).sum()
        q_taken = ev.q.gather(-1, ops.unsqueeze(-1)).squeeze(-1)
        joint_ratio = joint.exp()
        return {
            "policy_loss": -surrogate.sum(),
            "value_loss": 0.5 * value_err.sum(),
            "entropy_bonus": weighted_entropy,
            "q_loss": 0.5 * (q_taken - q_targets).square().sum(),
            # Measured during the step (before it is applied), so a separate name from the diagnostics'
            # post-update ``approx_kl``: in a one-epoch update this is ~0 by construction.
            "step_approx_kl": (joint_ratio - 1.0 - joint).sum(),
            "step_clip_fraction": ((joint_ratio - 1.0).abs() > opts.clip_ratio).float().sum(),
            "nonfinite": (~torch.isfinite(ev.log_probs)).sum().float(),
        }

    # ------------------------------------------------------------------------------------------ steps
    def fit_critic_mean(self, inputs: UpdateInputs) -> torch.Tensor:
        """Shift the critic's output bias by the rollout's mean of (return - stored value); return the shift in
        return units.

        Why: every hidden layer of the critic is LayerNorm'd, so the one parameter that moves V(s) by the same
        amount in every state is this bias, and Adam moves it about ``lr`` per step. A return mean away from the
        critic's output (growing returns, an offset, value_norm's shifted statistics) was instead learned by
        turning every state's hidden pattern into the same one: the critic collapsed to one value for every state
        (explained variance 0). This is the least-squares step for the bias alone: the stored values are the
        current critic's (the rollout was collected with these parameters; value_norm preserves them).
        """
        residual = (inputs.returns.float() - inputs.old_values.float()).mean()
        output = self.network.critic[-1]
        step = residual if self.value_norm is None else residual / self.value_norm.std
        with torch.no_grad():
            output.bias.add_(step.to(output.bias.dtype))
        return residual

    def run(self, inputs: UpdateInputs) -> TrainStats:
        opts = self.options
        device = inputs.actions.device
        mean_shift = torch.zeros((), device=device)
        if opts.critic_mean_fit:
            mean_shift = self.fit_critic_mean(inputs)
            # value_clip bounds how far the gradient steps move V from where this update put it.
            inputs = attrs.evolve(inputs, old_values=inputs.old_values + mean_shift)
        n_envs = inputs.n_envs
        n_groups = min(self.options.minibatches, n_envs)
        kl_limit = opts.kl_stop_factor * opts.target_kl
        sums: dict[str, torch.Tensor] = {}
        steps, early_stopped, epochs_done = 0, False, 0.0
        replay_error = torch.zeros((), device=device)
        self.network.train()
        for epoch in range(opts.update_epochs):
            order = torch.randperm(n_envs, generator=self.generator, device=self.generator.device).to(device)
            groups = order.chunk(n_groups)
            for g, envs in enumerate(groups):
                step = self._gradient_step(inputs, envs, capture_replay=steps == 0)
                kl, nonfinite = torch.stack([step["step_approx_kl"], step["nonfinite"]]).tolist()  # the step's one sync
                if nonfinite > 0:
                    self.optimizer.zero_grad(set_to_none=True)
                    raise FloatingPointError(
                        f"ppo_v2 update: {int(nonfinite)} stored action(s) have non-finite log-probabilities under "
                        "their stored masks; the masks or actions in the rollout do not match what was sampled"
                    )
                if steps == 0:
                    replay_error = step.pop("replay_error")
                else:
                    step.pop("replay_error", None)
                if steps > 0 and kl > kl_limit:
                    self.optimizer.zero_grad(set_to_none=True)
                    early_stopped = True
                    break
                self._apply(step)
                for key, value in step.items():
                    previous = sums.get(key)
                    if previous is None:
                        sums[key] = value.detach()
                    elif key.endswith("_max"):
                        sums[key] = torch.maximum(previous, value.detach())
                    else:
                        sums[key] = previous + value.detach()
                steps += 1
                epochs_done = epoch + (g + 1) / len(groups)
            if early_stopped:
                break
        return TrainStats(
            sums=sums, gradient_steps=steps, epochs_completed=epochs_done, early_stopped=early_stopped,
            replay_error=replay_error, critic_mean_shift=mean_shift,
        )

    def _gradient_step(self, inputs: UpdateInputs, envs: torch.Tensor, capture_replay: bool) -> dict[str, torch.Tensor]:
        """Forward and backward over the minibatch's whole sequences, chunk by chunk."""
        n_steps = inputs.n_steps
        chunk = self.options.bptt_chunk or n_steps
        n_samples = float(n_steps * envs.numel())
        state = (inputs.initial_state[0].index_select(1, envs), inputs.initial_state[1].index_select(1, envs))
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        replay = torch.zeros((), device=inputs.actions.device)
        for t0 in range(0, n_steps, chunk):
            t1 = min(n_steps, t0 + chunk)
            ev, state = self.evaluate(inputs, envs, t0, t1, state)
            losses = self._losses(ev, inputs, envs, t0, t1)
            total = (
                losses["policy_loss"]
                + self.options.value_coef * losses["value_loss"]
                - self.options.entropy_coef * losses["entropy_bonus"]
                + losses["q_loss"]
            )
            (total / n_samples).backward()
            state = (state[0].detach(), state[1].detach())
            if capture_replay:
                old = _select(inputs.old_log_probs, t0, t1, envs)
                diff = (ev.log_probs.detach() - old).abs()
                replay = torch.maximum(replay, torch.where(torch.isfinite(diff), diff, 0.0).amax())
            for key, value in losses.items():
                totals[key] = totals.get(key, torch.zeros_like(value)) + value.detach()
        step = {key: value / n_samples for key, value in totals.items()}
        step["nonfinite"] = totals["nonfinite"]
        step["replay_error"] = replay
        return step

    def _apply(self, step: dict[str, torch.Tensor]) -> None:
        """Per-group norms, global clip (pre-clip norm kept), Q clipped on its own, optimiser step."""
        for name, params in self.groups.items():
            step[f"grad_norm/{name}"] = _grad_norm(params)
        max_norm = self.options.max_grad_norm
        total = nn.utils.clip_grad_norm_(self.main_params, max_norm)
        nn.utils.clip_grad_norm_(self.q_params, max_norm)
        critic_norm = self.options.critic_max_grad_norm
        if critic_norm is not None:
            step["critic_grad_clipped"] = (nn.utils.clip_grad_norm_(self.critic_params, critic_norm) > critic_norm).float()
        step["grad_norm"] = total.detach().float()
        step["grad_norm_max"] = total.detach().float()
        step["grad_clipped"] = (total > max_norm).float()
        self.optimizer.step()


def _grad_norm(params: Sequence[nn.Parameter]) -> torch.Tensor:
    grads = [p.grad.detach().float() for p in params if p.grad is not None]
    if not grads:
        device = params[0].device if params else None
        return torch.zeros((), device=device)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
