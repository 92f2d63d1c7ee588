"""Invariant 1 in the run loop: every step the runner stores holds, for every head, a nonempty mask row that
is exactly the mask of the observation the policy acted on; that observation is the state the env then
executes the action in; and the masks are unchanged between sampling and storing.

Why a run-loop property: the mask properties (test_inv1_masks_nonempty, test_masks_agree_with_lifecycle)
draw observations and never run an env, so they cannot reach what only a run does: a fused group, a step
whose loss turns non-finite and is rolled back (its seeds pruned) while the other envs go on, a blueprint
disabled mid-step by one env after another was offered it, every slot occupied, the last steps of 15-step
episodes, a round played by a runner restored from a checkpoint payload. An H100 study in that setting
(fused, bf16, resumed runs) stopped twice on an all-False stored mask row at step 13 of 15; here the CPU
plays it, with faults forced at drawn (env, step) pairs.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import attrs
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

from esper_core.api import EnvObservation, PolicyOutput, PolicySpec, hookimpl
from esper_core.config import load_config
from esper_core.config.loading import deep_merge
from esper_core.ops import HEADS
from esper_core.plugins import registry_from_plugins
from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations
from esper_core.run.env import MorphogenesisEnv
from esper_core.run.progress import Progress
from esper_core.run.runner import Runner
from esper_core.specs import BlueprintSpec
from support.run_configs import SMALL
from support.walkers import MaskWalker

N_ENVS = 3
#: The study's episode length: the failure was at step 13 of 15.
LONGEST = 15


def _broken_factory(channels: int, spatial: int) -> nn.Module:
    raise RuntimeError("this blueprint breaks its contract on purpose (it is disabled for the run)")


class Walker(MaskWalker):
    """Samples from its masks with drawn op logits (so some examples walk seeds to FOSSILIZED and fill
    every slot, others prune and re-germinate): reaches lifecycle states a young ppo_v2 rarely does."""


class RunLoopPlugin:
    @hookimpl
    def esper_policies(self) -> list[PolicySpec]:
        return [PolicySpec(name="walker", description="samples from its masks with drawn op logits", factory=Walker)]

    @hookimpl
    def esper_blueprints(self) -> list[BlueprintSpec]:
        return [BlueprintSpec(name="broken", description="its factory raises", factory=_broken_factory)]


@functools.cache
def _registry() -> Any:
    return registry_from_plugins(RunLoopPlugin(), builtins=True)


@attrs.frozen
class RunPlan:
    """A small fused run: lifecycle gates around the study's (max_seeds up to more than the 3 slots),
    episodes up to 15 steps, and the (env, step) pairs whose training loss is forced non-finite."""

    seed: int
    policy: str
    op_logits: tuple[float, ...]  # the walker's, in Op order
    length: int
    lifecycle: dict[str, int]
    faults: frozenset[tuple[int, int]]
    tempos: tuple[int, ...]


@st.composite
def run_plans(draw: st.DrawFn) -> RunPlan:
    length = draw(st.integers(LONGEST - 3, LONGEST))
    return RunPlan(
        seed=draw(st.integers(0, 2**16)),
        policy=draw(st.sampled_from(("walker", "ppo_v2"))),
        op_logits=draw(st.tuples(*[st.sampled_from((-2.0, 0.0, 3.0, 6.0))] * 6)),
        length=length,
        lifecycle={
            "min_training_epochs": draw(st.integers(0, 2)),
            "min_prune_age": draw(st.integers(0, 3)),
            "embargo_epochs": draw(st.integers(0, 2)),
            "resetting_epochs": draw(st.integers(0, 1)),
            "max_seeds": draw(st.integers(1, 4)),
        },
        faults=draw(st.frozensets(st.tuples(st.integers(0, N_ENVS - 1), st.integers(0, length - 1)), max_size=6)),
        tempos=draw(st.sampled_from(((1, 2), (3, 5, 8)))),
    )


def _config(plan: RunPlan) -> Any:
    policy: dict[str, Any] = {"name": plan.policy}
    if plan.policy == "ppo_v2":
        policy["options"] = {"feature_dim": 16, "lstm_dim": 16}
    return load_config(
        overrides=deep_merge(SMALL, {
            "task": {"options": {"train_size": 64, "val_size": 32}},
            "training": {"epoch_samples": 32, "batch_size": 32, "val_samples": 32, "eval_batch_size": 32},
            "run": {"envs": N_ENVS, "episode_length": plan.length, "rounds": 2, "seed": plan.seed},
            "host": {"name": "resnet_impaired"},
            "reward": {"name": "growth"},
            "policy": policy,
            "lifecycle": plan.lifecycle,
            "actions": {"tempos": list(plan.tempos), "blueprints": ["norm", "conv_light", "broken"]},
            "device": {"fused": "on"},
        }),
        cuda_available=False,
    )


def _slot_state(slots: Any) -> list[tuple[Any, ...]]:
    """What the masks read of each slot."""
    return [(s.stage, s.epochs_in_stage, s.seed_age, s.alpha_at_target) for s in slots]


def _force_faults(env: MorphogenesisEnv, faults: frozenset[tuple[int, int]]) -> None:
    """The env's epoch reports a non-finite training loss at the drawn steps (what bf16 does on a GPU), so
    ``finish_step`` rolls it back and prunes its live seeds. (A fused group hands each env its epoch's
    totals through ``add_train_totals``.)"""
    add_train_totals = env.add_train_totals

    @functools.wraps(add_train_totals)
    def faulting(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> None:
        if (env.index, env._epoch) in faults:
            loss_sum = loss_sum + float("nan")
        add_train_totals(loss_sum, correct, seen)

    env.add_train_totals = faulting  # type: ignore[method-assign]


class Recorder:
    """Wraps a runner's acting and storing: checks each observation against its env's model when the
    policy acts, and the masks handed to the rollout against a copy taken when they were sampled."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.steps: list[tuple[list[EnvObservation], dict[str, torch.Tensor]]] = []
        act, store = runner.policy.act, runner._store

        def recording_act(observations: Any, state: Any, deterministic: bool = False) -> PolicyOutput:
            for env, obs in zip(runner.envs, observations):
                model = env._require_model()
                assert _slot_state(obs.slots) == _slot_state(model.summary()), (
                    f"env {env.index}: the observation acted on is not the env's state"
                )
                assert obs.disabled_blueprints == env.quarantine.blueprints
            output = act(observations, state, deterministic)
            self.steps.append((list(observations), {h: m.clone() for h, m in output.masks.items()}))
            return output

        def checked_store(step: int, output: PolicyOutput, rewards: list[float], done: bool) -> None:
            sampled = self.steps[-1][1]
            for head in HEADS:
                changed = f"step {step}: the {head} mask changed between sampling and storing"
                assert torch.equal(output.masks[head], sampled[head]), changed
            store(step, output, rewards, done)

        runner.policy.act = recording_act  # type: ignore[method-assign]
        runner._store = checked_store  # type: ignore[method-assign]

    def check_rollout(self) -> None:
        """The rollout of the round just played: every stored row nonempty and equal to the masks of the
        observation it was sampled from; the whole rollout passes the update's validation."""
        buffer, space, lifecycle = self.runner.buffer, self.runner.space, self.runner.config.lifecycle
        assert buffer is not None and len(self.steps) == buffer.n_steps
        for t, (observations, _) in enumerate(self.steps):
            inputs = mask_inputs_from_observations(observations, space, lifecycle)
            truth = compute_action_masks(inputs, buffer.actions[t])
            for head in HEADS:
                stored = buffer.masks[head][t]
                assert stored.any(-1).all(), f"step {t}: an all-False {head} row was stored"
                assert torch.equal(stored, truth[head]), f"step {t}: the stored {head} mask is not the observation's"
        buffer.validate()
        self.steps.clear()


def _runner(plan: RunPlan, payload: dict[str, Any] | None = None) -> tuple[Runner, Recorder]:
    # The quarantine notice goes to a buffer: the disabled blueprint is part of the plan, not news.
    runner = Runner.build(_config(plan), _registry(), progress=Progress(stream=io.StringIO(), quiet=True))
    assert [group.fused for group in runner.groups] == [False]  # fused once the first reset builds the wide host
    if isinstance(runner.policy, Walker):
        runner.policy.op_logits = torch.tensor(plan.op_logits)
    for env in runner.envs:
        _force_faults(env, plan.faults)
    if payload is not None:
        runner.restore(payload, announce=False)
    return runner, Recorder(runner)


def check_run(plan: RunPlan) -> None:
    """Two rounds of ``plan``; the second in a fresh runner restored from the first's round-boundary
    payload (what ``esper resume`` does). Every step and both rollouts are checked (``Recorder``)."""
    runner, recorder = _runner(plan)
    runner.run(1)
    assert [group.fused for group in runner.groups] == [True]
    recorder.check_rollout()
    payload = runner.payload()
    runner.close()
    resumed, recorder = _runner(plan, payload)
    resumed.run(1)
    recorder.check_rollout()
    resumed.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_plans())
def test_stored_masks_are_the_observed_state_s_through_faults_quarantine_and_resume(plan: RunPlan) -> None:
    check_run(plan)
