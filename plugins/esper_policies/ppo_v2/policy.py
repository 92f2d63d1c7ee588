"""The ``ppo_v2`` policy object: acting (one batched forward for all envs), updating, saving.

Everything random it does (initialisation, sampling, minibatch order) comes from ``context.seed``:
initialisation runs under a forked global RNG seeded with it, sampling and minibatch order draw from the
policy's own generator, whose state is in ``state_dict`` (exact resume).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from esper_core.rl.masks import mask_inputs_from_observations
from esper_core.rl.observation import ObservationEncoder, RunningNormaliser
from esper_core.records import EnvObservation, PolicyContext, PolicyOutput
from esper_core.rl.sampling import sample_actions

from esper_policies.ppo_v2.diagnostics import compute_diagnostics
from esper_policies.ppo_v2.network import PolicyNetwork, State
from esper_policies.ppo_v2.options import PPOV2Options
from esper_policies.ppo_v2.stored import StoredLayout
from esper_policies.ppo_v2.update import PPOUpdate, autocast_context, prepare_inputs
from esper_policies.ppo_v2.value_norm import ValueNormaliser

logger = logging.getLogger(__name__)

#: Adam's epsilon (PPO convention; the torch default 1e-8 makes early steps needlessly large).
ADAM_EPS = 1e-5


class PPOV2Policy:
    """Recurrent factored actor-critic trained with PPO. State between steps: LSTM (h, c), [1, E, lstm_dim]."""

    learns = True

    def __init__(self, options: PPOV2Options, context: PolicyContext) -> None:
        self.options = options
        self.context = context
        self.space = context.space
        self.device = torch.device(context.device)
        # The options validated the floors (head names, ranges); they are used as given.
        self.floors = {head: float(value) for head, value in self.options.prob_floors.items()}
        self.encoder = ObservationEncoder(self.space, context.lifecycle, context.episode_length)
        self.layout = StoredLayout(self.encoder.float_dim, self.encoder.n_slots)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(context.seed))
            network = PolicyNetwork(
                obs_dim=self.encoder.float_dim,
                n_slots=self.encoder.n_slots,
                n_blueprints=self.encoder.n_blueprints,
                head_sizes=self.space.head_sizes,
                feature_dim=self.options.feature_dim,
                lstm_dim=self.options.lstm_dim,
                blueprint_embed_dim=self.options.blueprint_embed_dim,
                critic_trunk=self.options.critic_trunk,
            )
        self.network = network.to(self.device)
        self.normaliser = RunningNormaliser(self.encoder.float_dim, device=self.device)
        self.value_norm = ValueNormaliser(self.device) if self.options.value_norm else None
        self.optimizer = self._make_optimizer()
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(context.seed))
        self.updates = 0
        self.parameter_count = self.network.parameter_count()
        logger.info(
            "ppo_v2: %d parameters (%d observation features + %d slots x %d-dim blueprint embedding)",
            self.parameter_count, self.encoder.float_dim, self.encoder.n_slots, self.options.blueprint_embed_dim,
        )
        self._updater = PPOUpdate(self.network, self.optimizer, options, self.floors, self.generator, self.value_norm)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        groups = self.network.parameter_groups()
        critic = groups.pop("critic")
        rest = [p for ps in groups.values() for p in ps]
        return torch.optim.Adam(
            [
                {"params": rest, "weight_decay": 0.0},
                {
                    "params": critic,
                    "weight_decay": float(self.options.critic_weight_decay),
                    "lr": self.options.lr if self.options.critic_lr is None else self.options.critic_lr,
                },
            ],
            lr=self.options.lr,
            eps=ADAM_EPS,
        )

    # -------------------------------------------------------------------------------------- acting
    def initial_state(self, n_envs: int) -> State:
        return self.network.initial_state(n_envs, self.device)

    def reset_state(self, state: State | None, done: torch.Tensor) -> State:
        """Zero the recurrent state of the envs whose episode ended (``done`` bool [E])."""
        done = torch.as_tensor(done, device=self.device).bool().reshape(-1)
        if state is None:
            return self.initial_state(done.numel())
        keep = (~done).to(state[0].dtype).view(1, -1, 1)
        return state[0] * keep, state[1] * keep

    @torch.no_grad()
    def act(
        self, observations: Sequence[EnvObservation], state: State | None, deterministic: bool = False
    ) -> PolicyOutput:
        n_envs = len(observations)
        if state is None:
            state = self.initial_state(n_envs)
        if state[0].shape[1] != n_envs:
            raise ValueError(f"recurrent state is for {state[0].shape[1]} env(s); got {n_envs} observation(s)")
        encoded = self.encoder.encode(observations, self.device)
        features = self.normaliser.normalise(encoded.features)
        self.network.eval()
        with autocast_context(self.device, self.options.bf16):
            out, new_state = self.network.step(features, encoded.blueprint_index, state)
        inputs = mask_inputs_from_observations(observations, self.space, self.context.lifecycle, self.device)
        sampled = sample_actions(out.logits, inputs, self.floors, deterministic=deterministic, generator=self.generator)
        value = out.value.detach().float()
        return PolicyOutput(
            actions=sampled.actions,
            log_probs=sampled.log_probs,
            masks=sampled.masks,
            value=value if self.value_norm is None else self.value_norm.denormalise(value),
            state=new_state,
            features=self.layout.pack(features, encoded.features, encoded.blueprint_index),
        )

    # ------------------------------------------------------------------------------------ learning
    def update(self, rollout: Any) -> dict[str, Any]:
        inputs = prepare_inputs(rollout, self.layout, self.options.gamma, self.options.gae_lambda, self.device)
        extra: dict[str, float] = {}
        if self.value_norm is not None:
            # Statistics first, so this update's targets are normalised with them; V(s) is preserved.
            self.value_norm.update_preserving(inputs.returns, self.network.critic[-1])
            extra = {"value_norm_mean": float(self.value_norm.mean), "value_norm_std": float(self.value_norm.std)}
        train = self._updater.run(inputs)
        after = self._updater.evaluate_all(inputs)  # values in return units (denormalised)
        # Statistics move only now: every row of this rollout was normalised with the same statistics.
        self.normaliser.update(inputs.raw_features)
        self.updates += 1
        return compute_diagnostics(
            inputs,
            after,
            train,
            options=self.options,
            feature_names=self.encoder.feature_names,
            saturation=self.encoder.saturation(inputs.raw_features),
            extra={
                "updates": self.updates,
                "param_count": self.parameter_count,
                "normaliser_count": float(self.normaliser.count),
                "lr": float(self.optimizer.param_groups[0]["lr"]),
                **extra,
            },
        )

    # --------------------------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain containers only (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "normaliser": self.normaliser.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
            "action_layout": self.space.layout(),
            "feature_names": list(self.encoder.feature_names),
            **({} if self.value_norm is None else {"value_norm": self.value_norm.state_dict()}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = [k for k in ("network", "optimizer", "normaliser", "generator") if k not in state]
        if missing:
            raise KeyError(f"ppo_v2 state lacks key(s) {missing}; got {sorted(state)}")
        if "action_layout" in state:
            problems = self.space.diff(state["action_layout"], "the saved state")
            if problems:
                raise ValueError("ppo_v2 state was saved for another action space:\n  " + "\n  ".join(problems))
        if "feature_names" in state and list(state["feature_names"]) != list(self.encoder.feature_names):
            saved, mine = list(state["feature_names"]), list(self.encoder.feature_names)
            changed = [n for n in saved if n not in mine] + [n for n in mine if n not in saved]
            raise ValueError(
                f"ppo_v2 state was saved with another observation layout ({len(saved)} features, this one has "
                f"{len(mine)}; differing: {changed[:10]})"
            )
        if self.value_norm is not None:
            if "value_norm" not in state:
                raise KeyError(
                    "ppo_v2 state has no value normaliser statistics, but policy.options.value_norm is on: it was "
                    "saved with value_norm off; resume with the same option"
                )
            self.value_norm.load_state_dict(state["value_norm"])
        elif "value_norm" in state:
            raise KeyError("ppo_v2 state was saved with policy.options.value_norm on; resume with the same option")
        saved_trunk = "own" if any(k.startswith("critic_feature_net.") for k in state["network"]) else "shared"
        if saved_trunk != self.options.critic_trunk:
            raise ValueError(
                f"ppo_v2 state was saved with policy.options.critic_trunk={saved_trunk!r}, this policy has "
                f"{self.options.critic_trunk!r}; resume with the same option"
            )
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.normaliser.load_state_dict(state["normaliser"])
        self.generator.set_state(state["generator"].cpu() if isinstance(state["generator"], torch.Tensor) else state["generator"])
        self.updates = int(state.get("updates", 0))
