"""A preallocated, time-major rollout buffer that keeps what the update must not recompute.

The masks each action was sampled under are stored per head and reused by the update (recomputed masks
that differ produce impossible actions and NaN gradients); so is the recurrent state at the start of
the sequence, so a recurrent policy can replay the rollout from the same hidden state.

``add`` checks each step as it is stored (one host sync per env step): every head's stored mask row has a
valid entry, the stored action is valid under it, and the stored masks and actions equal those handed in.
A bad step is then caught at the step that produced it, naming what was handed in and what was stored,
instead of surfacing rounds later in the update.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from esper_core.rl.advantages import gae
from esper_core.ops import HEADS


class RolloutError(ValueError):
    """A rollout is incomplete or holds data the update cannot use; the message says where."""


class RolloutBuffer:
    """Storage for ``n_steps`` x ``n_envs`` transitions, all tensors on ``device``.

    Shapes: ``obs`` [T, E, D] float32; ``obs_int`` [T, E, K] int64 (only when K = ``obs_int_dim`` > 0,
    e.g. blueprint indices for an embedding); ``actions`` [T, E, H] int64; ``log_probs`` [T, E, H];
    ``masks[head]`` [T, E, n] bool; ``values``, ``rewards``, ``bootstrap_values`` [T, E] float32;
    ``dones``, ``truncated`` [T, E] bool. ``initial_state`` is the recurrent state at sequence start.
    """

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        obs_dim: int,
        head_sizes: Mapping[str, int],
        device: torch.device | str = "cpu",
        obs_int_dim: int = 0,
        check_steps: bool = True,
    ) -> None:
        missing = [h for h in HEADS if h not in head_sizes]
        if missing:
            raise ValueError(f"head_sizes lacks head(s) {missing}; pass ActionSpace.head_sizes")
        if n_steps < 1 or n_envs < 1:
            raise ValueError(f"a rollout needs n_steps >= 1 and n_envs >= 1; got {n_steps}, {n_envs}")
        self.n_steps, self.n_envs = n_steps, n_envs
        self.head_sizes = {h: int(head_sizes[h]) for h in HEADS}
        self.device = torch.device(device)
        shape, kw = (n_steps, n_envs), {"device": self.device}
        self.obs = torch.zeros(*shape, obs_dim, dtype=torch.float32, **kw)
        self.obs_int = torch.zeros(*shape, obs_int_dim, dtype=torch.long, **kw) if obs_int_dim > 0 else None
        self.actions = torch.zeros(*shape, len(HEADS), dtype=torch.long, **kw)
        self.log_probs = torch.zeros(*shape, len(HEADS), dtype=torch.float32, **kw)
        self.masks = {h: torch.zeros(*shape, n, dtype=torch.bool, **kw) for h, n in self.head_sizes.items()}
        self.values = torch.zeros(*shape, dtype=torch.float32, **kw)
        self.rewards = torch.zeros(*shape, dtype=torch.float32, **kw)
        self.dones = torch.zeros(*shape, dtype=torch.bool, **kw)
        self.truncated = torch.zeros(*shape, dtype=torch.bool, **kw)
        self.bootstrap_values = torch.zeros(*shape, dtype=torch.float32, **kw)
        self.initial_state: tuple[torch.Tensor, ...] = ()
        self.advantages: torch.Tensor | None = None
        self.returns: torch.Tensor | None = None
        self._filled = [False] * n_steps
        #: ``add`` checks every step as it is stored (``_check_step``); False skips it.
        self.check_steps = check_steps

    # -------------------------------------------------------------------------------------- writing
    def clear(self) -> None:
        """Forget what was added (tensors are reused, not reallocated)."""
        self._filled = [False] * self.n_steps
        self.truncated.zero_()
        self.bootstrap_values.zero_()
        self.initial_state = ()
        self.advantages = self.returns = None

    def set_initial_state(self, state: Sequence[torch.Tensor] | torch.Tensor | None) -> None:
        """Store (a detached copy of) the recurrent state the first step was taken from."""
        if state is None:
            self.initial_state = ()
        elif isinstance(state, torch.Tensor):
            self.initial_state = (state.detach().clone(),)
        else:
            self.initial_state = tuple(s.detach().clone() for s in state)

    def add(
        self,
        step: int,
        *,
        obs: torch.Tensor,
        actions: torch.Tensor,
        log_probs: torch.Tensor,
        masks: Mapping[str, torch.Tensor],
        values: torch.Tensor,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        truncated: torch.Tensor | None = None,
        bootstrap_values: torch.Tensor | None = None,
        obs_int: torch.Tensor | None = None,
    ) -> None:
        """Write step ``step`` for every env ([E, ...] tensors; copies, detached)."""
        if not 0 <= step < self.n_steps:
            raise IndexError(f"rollout step {step} out of range [0, {self.n_steps})")
        missing = [h for h in HEADS if h not in masks]
        if missing:
            raise ValueError(f"add(step={step}): masks lack head(s) {missing}")
        if (obs_int is None) != (self.obs_int is None):
            raise ValueError(
                f"add(step={step}): obs_int {'missing' if obs_int is None else 'given'} but the buffer was built "
                f"with obs_int_dim={0 if self.obs_int is None else self.obs_int.shape[-1]}"
            )
        with torch.no_grad():
            self.obs[step].copy_(obs)
            if obs_int is not None and self.obs_int is not None:
                self.obs_int[step].copy_(obs_int)
            self.actions[step].copy_(actions)
            self.log_probs[step].copy_(log_probs)
            for head in HEADS:
                self.masks[head][step].copy_(masks[head])
            self.values[step].copy_(values.reshape(self.n_envs))
            self.rewards[step].copy_(rewards.reshape(self.n_envs))
            self.dones[step].copy_(dones.reshape(self.n_envs))
            if truncated is not None:
                self.truncated[step].copy_(truncated.reshape(self.n_envs))
            else:
                self.truncated[step].zero_()
            if bootstrap_values is not None:
                self.bootstrap_values[step].copy_(bootstrap_values.reshape(self.n_envs))
            else:
                self.bootstrap_values[step].zero_()
        if self.check_steps:
            self._check_step(step, actions, masks)
        self._filled[step] = True

    def _check_step(self, step: int, actions: torch.Tensor, masks: Mapping[str, torch.Tensor]) -> None:
        """Raise RolloutError unless step ``step`` as stored is usable and equals what was handed in: each
        head's stored action lies in range and is valid under its stored mask row (so the row has a valid
        entry), and the stored rows equal ``actions`` and ``masks``. One host sync; the message (built only
        on failure) names step, env and head, the mask handed in and the buffer's row."""
        with torch.no_grad():
            given_actions = actions.to(self.device)
            stored_actions = self.actions[step]
            ok = []
            for i, head in enumerate(HEADS):
                row, action = self.masks[head][step], stored_actions[:, i]
                in_range = (action >= 0) & (action < row.shape[-1])
                allowed = row.gather(-1, action.clamp(0, row.shape[-1] - 1).unsqueeze(-1)).squeeze(-1) & in_range
                same = (row == masks[head].to(self.device)).all(-1) & (action == given_actions[:, i])
                ok.append(allowed & same)
            good = torch.stack(ok)  # [H, E]
        if bool(good.all()):  # the step's one sync
            return
        problems = []
        for i, e in (~good).nonzero().tolist():
            head = HEADS[i]
            given_mask = masks[head][e].to(self.device)
            stored_mask = self.masks[head][step, e]
            given_action, stored_action = int(given_actions[e, i]), int(self.actions[step, e, i])
            n = stored_mask.shape[-1]
            given_ok = 0 <= given_action < n and bool(given_mask[given_action])
            if not given_ok:
                why = (
                    "the mask handed in already forbids the action (the runner's legality check accepted it "
                    "before the env step, so the policy output's mask tensor changed in between)"
                )
            else:
                why = "the buffer's row differs from what was handed in (the copy into the buffer did not take)"
            problems.append(
                f"head {head!r}, env {e}: action handed in {given_action}, stored {stored_action}; mask handed in "
                f"{given_mask.int().tolist()}, buffer's row {stored_mask.int().tolist()}: {why}"
            )
        bad = int((~good).sum())
        raise RolloutError(
            f"rollout step {step} stored unusable data ({bad} head/env pair(s)):\n  "
            + "\n  ".join(problems[:8])
            + (f"\n  ... and {len(problems) - 8} more" if len(problems) > 8 else "")
        )

    # ------------------------------------------------------------------------------------- checking
    def validate(self) -> None:
        """Raise RolloutError unless every step was added, every mask row has a valid entry, every stored
        action is valid under its stored mask, and log-probs, values and rewards are finite."""
        missing = [t for t, ok in enumerate(self._filled) if not ok]
        if missing:
            raise RolloutError(f"rollout steps never added: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        problems: list[str] = []
        for i, head in enumerate(HEADS):
            mask, action = self.masks[head], self.actions[..., i]
            empty = ~mask.any(-1)
            if bool(empty.any()):
                t, e = (int(x) for x in empty.nonzero()[0])
                problems.append(f"head {head!r}: stored mask has no valid entry at step {t}, env {e}")
            out_of_range = (action < 0) | (action >= mask.shape[-1])
            if bool(out_of_range.any()):
                t, e = (int(x) for x in out_of_range.nonzero()[0])
                problems.append(
                    f"head {head!r}: action {int(action[t, e])} out of range [0, {mask.shape[-1]}) at step {t}, env {e}"
                )
                continue
            allowed = mask.gather(-1, action.unsqueeze(-1)).squeeze(-1)
            if not bool(allowed.all()):
                t, e = (int(x) for x in (~allowed).nonzero()[0])
                valid = mask[t, e].nonzero().flatten().tolist()
                problems.append(
                    f"head {head!r}: action {int(action[t, e])} at step {t}, env {e} is invalid under its stored mask "
                    f"(valid entries {valid}); {int((~allowed).sum())} such action(s) in all"
                )
        if problems and self.check_steps:
            problems.append(
                "every step passed its check when it was added, so the buffer's mask or action rows changed "
                "afterwards (written by something else after add)"
            )
        for name, tensor in (("log_probs", self.log_probs), ("values", self.values), ("rewards", self.rewards)):
            bad = ~torch.isfinite(tensor)
            if bool(bad.any()):
                where = tuple(int(x) for x in bad.nonzero()[0])
                problems.append(f"{name} not finite at index {where} (value {tensor[where].item()})")
        if problems:
            raise RolloutError("invalid rollout:\n  " + "\n  ".join(problems))

    # -------------------------------------------------------------------------------------- returns
    def compute_returns(self, last_values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE over the stored rollout; stores and returns (advantages, returns), each [T, E]."""
        self.advantages, self.returns = gae(
            self.rewards,
            self.values,
            self.dones,
            self.truncated,
            self.bootstrap_values,
            last_values.reshape(self.n_envs).to(self.device),
            gamma,
            lam,
        )
        return self.advantages, self.returns
