"""A tiny deterministic "slot game": the env contract as a policy sees it, with no neural host.

It produces ``EnvObservation``s with slot summaries, accepts ``DecodedAction``s, and follows the same
lifecycle rules (``esper_core.growth.lifecycle`` gates: an illegal action raises, it is never converted), so the
shared masks apply unchanged. The game:

- Each episode draws a context k in {0, 1, 2}, visible as the observation's train accuracy (0.2/0.5/0.8).
- Blueprint ``BLUEPRINTS[k]`` is the right one for context k. Slots have topologies: ``narrow`` fits only
  s0, ``wide`` only s1, ``both`` either, so the right blueprint needs the right slot (the blueprint mask
  depends on the sampled slot).
- Every step, each slot holding a *live* seed (``LIVE_SEED_STAGES``: the stages the ``max_seeds`` gate
  counts) pays +0.1 if its blueprint is the right one, -0.05 otherwise (rent); any op other than WAIT and
  GERMINATE costs 0.03 (fiddling). One live seed at most (``max_seeds=1``). A FOSSILIZED seed has left the
  game: it neither pays nor costs. (It used to keep paying without counting toward ``max_seeds``, so
  GERMINATE, WAIT, ADVANCE, ADVANCE, FOSSILIZE, GERMINATE again earned two seeds' pay: 2.61 at length 16 in
  context 1, above the intended 1.6, and a trained ppo_v2 found it. The last tests of
  tests/integration/test_ppo_learns.py guard against this and any other play beating the intended one.)
- Optimal: germinate the right blueprint in a fitting slot at step 0, then WAIT: return 0.1 x length. No
  play beats it: only live seeds pay, at most one is live, and it pays at most 0.1 per step. The longer the
  episode, the sparser the steps on which blueprint, slot, style, tempo and alpha_target matter (1 in 16 at
  length 16: close to the ~5% GERMINATE rate of real runs).

``play_round`` plays one episode in every game with a policy exactly as the run loop does (batched act,
legality check, rollout with the stored masks, initial recurrent state, done at the last step).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import attrs
import torch

from esper_core.rl.actions import ActionSpace
from esper_core.config import LifecycleConfig
from esper_core.growth.lifecycle import germination_refusal, op_refusal
from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations
from esper_core.ops import ALPHA_SPEEDS, HEADS, Op
from esper_core.records import DecodedAction, EnvObservation, PolicyContext, SlotSummary
from esper_core.rl.rollout import RolloutBuffer
from esper_core.stages import LIVE_SEED_STAGES, SeedStage

SLOTS = ("s0", "s1")
SLOT_TOPOLOGIES = ("a", "b")
BLUEPRINTS = ("narrow", "both", "wide")
BLUEPRINT_TOPOLOGIES = {"narrow": {"a"}, "both": {"a", "b"}, "wide": {"b"}}
CONTEXT_CUES = (0.2, 0.5, 0.8)
LIFECYCLE = LifecycleConfig(min_training_epochs=2, min_prune_age=2, embargo_epochs=1, resetting_epochs=1, max_seeds=1)
EPISODE_LENGTH = 8
RIGHT_PAYS, WRONG_COSTS, FIDDLE_COSTS = 0.1, 0.05, 0.03
OPTIMAL_RETURN = RIGHT_PAYS * EPISODE_LENGTH
HOST_PARAMS, SEED_PARAMS = 1_000, 100

#: The stages in which a seed pays (or costs) every step: exactly those ``max_seeds`` counts, so that one seed
#: limit also limits the pay per step. FOSSILIZED is not among them.
PAYING_STAGES = LIVE_SEED_STAGES


class IllegalGameAction(RuntimeError):
    pass


def game_space() -> ActionSpace:
    return ActionSpace.build(
        slots=SLOTS,
        blueprints=BLUEPRINTS,
        blueprint_topologies=BLUEPRINT_TOPOLOGIES,
        styles=("add", "mul"),
        tempos=(1, 2),
        alpha_targets=(0.5, 1.0),
        topology="a",
        slot_topologies=SLOT_TOPOLOGIES,
    )


def game_context(
    n_envs: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    episode_length: int = EPISODE_LENGTH,
) -> PolicyContext:
    return PolicyContext(
        space=game_space(),
        n_envs=n_envs,
        episode_length=episode_length,
        device=torch.device(device),
        seed=seed,
        lifecycle=LIFECYCLE,
    )


@attrs.define
class _Slot:
    name: str
    topology: str
    stage: SeedStage = SeedStage.DORMANT
    blueprint: str | None = None
    style: str | None = None
    alpha: float = 0.0
    alpha_target: float = 0.0
    alpha_step: float = 0.0
    epochs_in_stage: int = 0
    seed_age: int = 0
    embargo_left: int = 0

    def summary(self) -> SlotSummary:
        at_target = self.stage != SeedStage.TRAINING and abs(self.alpha - self.alpha_target) < 1e-9
        return SlotSummary(
            name=self.name, stage=self.stage, blueprint=self.blueprint, style=self.style, alpha=self.alpha,
            alpha_target=self.alpha_target, alpha_at_target=at_target, epochs_in_stage=self.epochs_in_stage,
            seed_age=self.seed_age, embargo_left=self.embargo_left,
            seed_params=SEED_PARAMS if self.blueprint is not None else 0,
        )

    def move(self, stage: SeedStage) -> None:
        self.stage, self.epochs_in_stage = stage, 0

    def clear(self) -> None:
        self.blueprint = self.style = None
        self.alpha = self.alpha_target = self.alpha_step = 0.0
        self.seed_age = 0


class SlotGame:
    """One env. ``reset()`` -> observation; ``step(action)`` -> (observation, reward, done)."""

    def __init__(self, seed: int, episode_length: int = EPISODE_LENGTH) -> None:
        self.rng = random.Random(seed)
        self.episode_length = episode_length
        self.context = 0
        self.epoch = 0
        self.slots: list[_Slot] = []
        self.last_op, self.good_steps = Op.WAIT, 0

    @property
    def right_blueprint(self) -> str:
        return BLUEPRINTS[self.context]

    def reset(self, context: int | None = None) -> EnvObservation:
        self.context = self.rng.randrange(len(BLUEPRINTS)) if context is None else context
        self.epoch, self.last_op, self.good_steps = 0, Op.WAIT, 0
        self.slots = [_Slot(name, topology) for name, topology in zip(SLOTS, SLOT_TOPOLOGIES)]
        return self.observe()

    def observe(self) -> EnvObservation:
        cue = CONTEXT_CUES[self.context]
        val_acc = min(1.0, cue + 0.01 * self.good_steps)
        summaries = tuple(s.summary() for s in self.slots)
        live = sum(s.seed_params for s in summaries if s.stage in PAYING_STAGES)
        return EnvObservation(
            epoch=self.epoch, episode_length=self.episode_length, topology="a", train_loss=1.0 - cue,
            train_acc=cue, val_loss=1.0 - val_acc, val_acc=val_acc, val_acc_delta=0.0, val_loss_delta=0.0,
            best_val_acc=val_acc, plateau_epochs=0, host_params=HOST_PARAMS, seed_params=live,
            param_budget_used=live / (0.5 * HOST_PARAMS), last_op=self.last_op, last_action_ok=True, slots=summaries,
        )

    def _slot(self, name: str | None) -> _Slot:
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise IllegalGameAction(f"unknown slot {name!r}")

    def step(self, action: DecodedAction) -> tuple[EnvObservation, float, bool]:
        reward = self._execute(action)
        self._step_epoch()
        for slot in self.slots:
            if slot.stage in PAYING_STAGES:
                good = slot.blueprint == self.right_blueprint
                reward += RIGHT_PAYS if good else -WRONG_COSTS
                self.good_steps += int(good)
        self.epoch += 1
        self.last_op = action.op
        return self.observe(), reward, self.epoch >= self.episode_length

    def _execute(self, action: DecodedAction) -> float:
        op = action.op
        if op == Op.WAIT:
            return 0.0
        slot = self._slot(action.slot)
        refusal = op_refusal(op, slot.summary(), LIFECYCLE)
        if refusal is None and op == Op.GERMINATE:
            refusal = germination_refusal([s.summary() for s in self.slots], LIFECYCLE)
            if refusal is None and slot.topology not in BLUEPRINT_TOPOLOGIES.get(action.blueprint or "", set()):
                refusal = f"blueprint {action.blueprint!r} does not fit slot {slot.name} (topology {slot.topology})"
        if refusal is not None:
            raise IllegalGameAction(f"{op.name} on {slot.name} ({slot.stage.name}): {refusal}")
        if op == Op.GERMINATE:
            slot.blueprint, slot.style = action.blueprint, action.style
            slot.alpha, slot.alpha_target = 0.0, float(action.alpha_target or 1.0)
            slot.alpha_step = slot.alpha_target / max(1, int(action.tempo or 1))
            slot.seed_age = 0
            slot.move(SeedStage.TRAINING)
            return 0.0
        if op == Op.ADVANCE:
            slot.move(SeedStage.BLENDING if slot.stage == SeedStage.TRAINING else SeedStage.HOLDING)
        elif op == Op.SET_ALPHA_TARGET:
            epochs = ALPHA_SPEEDS[action.alpha_speed or "instant"]
            slot.alpha_target = float(action.alpha_target or 1.0)
            slot.alpha_step = abs(slot.alpha_target - slot.alpha) / epochs if epochs else 1.0
            slot.move(SeedStage.BLENDING)
        elif op == Op.PRUNE:
            epochs = ALPHA_SPEEDS[action.alpha_speed or "instant"]
            slot.alpha_target = 0.0
            slot.alpha_step = slot.alpha / epochs if epochs else 1.0
            if not epochs:
                slot.alpha = 0.0
            slot.move(SeedStage.PRUNED)
        elif op == Op.FOSSILIZE:
            slot.move(SeedStage.FOSSILIZED)
        return -FIDDLE_COSTS

    def _step_epoch(self) -> None:
        for slot in self.slots:
            slot.epochs_in_stage += 1
            if slot.stage in (SeedStage.TRAINING, SeedStage.BLENDING, SeedStage.HOLDING):
                slot.seed_age += 1
            if slot.stage in (SeedStage.BLENDING, SeedStage.PRUNED):
                gap = slot.alpha_target - slot.alpha
                slot.alpha = slot.alpha_target if abs(gap) <= slot.alpha_step + 1e-12 else slot.alpha + slot.alpha_step * (1 if gap > 0 else -1)
            if slot.stage == SeedStage.PRUNED and slot.alpha == 0.0 and slot.epochs_in_stage > 0:
                slot.move(SeedStage.EMBARGOED)
                slot.embargo_left = LIFECYCLE.embargo_epochs
                slot.clear()
            elif slot.stage == SeedStage.EMBARGOED:
                slot.embargo_left -= 1
                if slot.embargo_left <= 0:
                    slot.move(SeedStage.RESETTING)
            elif slot.stage == SeedStage.RESETTING and slot.epochs_in_stage >= LIFECYCLE.resetting_epochs:
                slot.move(SeedStage.DORMANT)


@attrs.frozen(eq=False)
class RoundResult:
    rollout: RolloutBuffer | None
    returns: list[float]
    observations: list[list[EnvObservation]]  # [T + 1][E]: what each step acted on, then the final ones
    contexts: list[int]


def play_round(
    policy: Any,
    games: Sequence[SlotGame],
    *,
    deterministic: bool = False,
    rollout: RolloutBuffer | None = None,
    contexts: Sequence[int] | None = None,
) -> RoundResult:
    """One episode in every game, acting in one batch per step like the run loop; fills ``rollout``
    (created on the first call from the width of ``features``) unless ``deterministic``."""
    n_envs = len(games)
    space = policy.context.space
    observations = [g.reset(None if contexts is None else contexts[i]) for i, g in enumerate(games)]
    history = [observations]
    state = policy.initial_state(n_envs)
    returns = [0.0] * n_envs
    length = games[0].episode_length
    for step in range(length):
        output = policy.act(observations, state, deterministic=deterministic)
        device = output.actions.device
        truth = compute_action_masks(mask_inputs_from_observations(observations, space, LIFECYCLE, device), output.actions)
        for i, head in enumerate(HEADS):
            chosen = output.actions[:, i : i + 1]
            if not bool(output.masks[head].gather(1, chosen).all() and truth[head].gather(1, chosen).all()):
                raise IllegalGameAction(f"policy chose an illegal {head!r}: {output.actions.tolist()}")
        if not deterministic and output.features is not None:
            if rollout is None:
                rollout = RolloutBuffer(
                    length, n_envs, output.features.shape[-1], space.head_sizes, device=output.actions.device
                )
            if step == 0:
                rollout.clear()
                rollout.set_initial_state(state)
        results = [g.step(a) for g, a in zip(games, space.decode_batch(output.actions))]
        rewards = [r for _, r, _ in results]
        if not deterministic and rollout is not None:
            rollout.add(
                step,
                obs=output.features,
                actions=output.actions,
                log_probs=output.log_probs,
                masks=output.masks,
                values=output.value,
                rewards=torch.tensor(rewards, dtype=torch.float32, device=device),
                dones=torch.full((n_envs,), step == length - 1, dtype=torch.bool, device=device),
            )
        returns = [total + r for total, r in zip(returns, rewards)]
        observations = [obs for obs, _, _ in results]
        history.append(observations)
        state = output.state
    policy.reset_state(state, torch.ones(n_envs, dtype=torch.bool, device=output.actions.device))
    return RoundResult(rollout=rollout, returns=returns, observations=history, contexts=[g.context for g in games])
