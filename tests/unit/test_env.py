"""MorphogenesisEnv: epochs of fixed size, lifecycle via actions, rewards as consequences, fault recovery."""

from __future__ import annotations

import math

import pytest
import torch

from esper_core.config import EsperConfig, LifecycleConfig, RunConfig, TrainingConfig
from esper_core.run.env import IllegalActionError, MorphogenesisEnv
from esper_core.ops import Op
from esper_core.records import DecodedAction
from esper_core.stages import SeedStage
from support.run_fakes import HOST, NO_OPTIONS, FakeRegistry, SumOfAccuracyReward, toy_task

WAIT = DecodedAction(op=Op.WAIT)


def _config(episode_length: int = 6, epoch_samples: int | None = 64) -> EsperConfig:
    return EsperConfig(
        run=RunConfig(episode_length=episode_length),
        training=TrainingConfig(batch_size=32, epoch_samples=epoch_samples, eval_batch_size=64, lr=0.05, seed_lr=0.05),
        lifecycle=LifecycleConfig(min_training_epochs=1, min_prune_age=1, embargo_epochs=1, resetting_epochs=1),
    )


@pytest.fixture(scope="module")
def task():
    return toy_task()


def _env(task, seed: int = 0, **config_kw) -> MorphogenesisEnv:
    return MorphogenesisEnv(
        task, HOST, _config(**config_kw), FakeRegistry(), "cpu", seed, host_options=NO_OPTIONS,
        reward=SumOfAccuracyReward(),
    )


def _germinate(slot: str = "early", blueprint: str = "conv") -> DecodedAction:
    return DecodedAction(op=Op.GERMINATE, slot=slot, blueprint=blueprint, style="add", tempo=1, alpha_target=1.0)


def _stage(env: MorphogenesisEnv, slot: str) -> SeedStage:
    return {s.name: s.stage for s in env.observation.slots}[slot]


def test_reset_observes_an_untrained_host_and_resets_the_reward(task):
    env = _env(task)
    obs = env.reset()
    assert obs.epoch == 0 and obs.episode_length == 6
    assert [s.name for s in obs.slots] == ["early", "late"]
    assert all(s.stage is SeedStage.DORMANT for s in obs.slots)
    assert 0.0 <= obs.val_acc <= 1.0 and obs.best_val_acc == obs.val_acc and obs.plateau_epochs == 0
    assert obs.seed_params == 0 and obs.param_budget_used == 0.0
    assert env.reward.resets == 1


def test_an_epoch_is_epoch_samples_training_samples(task):
    env = _env(task, epoch_samples=80)  # 80 of 96 samples: 3 batches of 32, 32, 16
    env.reset()
    env.begin_step(WAIT)
    batches = 0
    while env.train_batch():
        batches += 1
    assert batches == 3 and env._pending["seen"] == 80
    env.launch_validation()
    result = env.finish_step()
    assert result.observation.epoch == 1


def test_episode_ends_after_episode_length_steps_and_rewards_see_before_and_after(task):
    env = _env(task, episode_length=3)
    first = env.reset()
    results = [env.step(WAIT) for _ in range(3)]
    assert [r.done for r in results] == [False, False, True]
    calls = env.reward.calls
    assert calls[0].before == first and calls[1].before == results[0].observation
    assert all(c.after == r.observation for c, r in zip(calls, results))
    assert results[-1].components["terminal"] == 1.0
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(WAIT)


def test_training_improves_the_host_and_tracks_best_and_plateau(task):
    env = _env(task, episode_length=6, epoch_samples=96)
    env.reset()
    observations = [env.step(WAIT).observation for _ in range(6)]
    last = observations[-1]
    assert last.best_val_acc == max(o.val_acc for o in observations) or last.best_val_acc >= last.val_acc
    assert last.train_loss < observations[0].train_loss + 1.0 and math.isfinite(last.train_loss)
    assert last.last_op is Op.WAIT and last.last_action_ok
    for previous, current in zip(observations, observations[1:]):
        assert current.val_acc_delta == pytest.approx(current.val_acc - previous.val_acc)
        assert current.plateau_epochs == (0 if current.best_val_acc > previous.best_val_acc else previous.plateau_epochs + 1)


def test_a_seed_goes_through_the_whole_lifecycle(task):
    env = _env(task, episode_length=8)
    start = env.reset()
    result = env.step(_germinate())
    assert [(t.from_stage, t.to_stage) for t in result.info.transitions] == [
        (SeedStage.DORMANT, SeedStage.GERMINATED), (SeedStage.GERMINATED, SeedStage.TRAINING)
    ]
    assert result.observation.seed_params > 0 and result.observation.param_budget_used > 0
    assert result.observation.last_op is Op.GERMINATE
    result = env.step(DecodedAction(op=Op.ADVANCE, slot="early"))
    assert _stage(env, "early") is SeedStage.BLENDING
    result = env.step(WAIT)  # alpha reaches its target after tempo=1 epoch; contribution measured
    assert "early" in result.info.contributions
    env.step(DecodedAction(op=Op.ADVANCE, slot="early"))
    assert _stage(env, "early") is SeedStage.HOLDING
    result = env.step(DecodedAction(op=Op.FOSSILIZE, slot="early"))
    assert _stage(env, "early") is SeedStage.FOSSILIZED
    assert result.observation.host_params > start.host_params and result.observation.seed_params == 0
    assert env.params_added == result.observation.host_params - start.host_params
    assert (env.stats.germinated, env.stats.fossilized, env.stats.pruned) == (1, 1, 0)


def test_an_illegal_action_is_an_error_never_a_wait(task):
    env = _env(task)
    env.reset()
    with pytest.raises(IllegalActionError, match="ADVANCE"):
        env.step(DecodedAction(op=Op.ADVANCE, slot="early"))


def test_a_non_finite_loss_rolls_back_prunes_the_seed_and_the_episode_goes_on(task):
    env = _env(task, episode_length=8)
    env.reset()
    env.step(_germinate("late", "nan_seed"))
    env.step(WAIT)
    before_fault = env.model.host.stem[0].weight.detach().clone()
    result = env.step(DecodedAction(op=Op.ADVANCE, slot="late"))  # blended at alpha 0: 0 * NaN = NaN
    assert result.info.fault is not None and "non-finite" in result.info.fault
    assert result.info.fault_pruned == ("late",)
    assert not result.info.action_ok and not result.observation.last_action_ok
    assert any(t.to_stage is SeedStage.PRUNED for t in result.info.transitions)
    assert torch.equal(env.model.host.stem[0].weight, before_fault)  # rolled back, not NaN
    assert all(math.isfinite(v) for v in (result.observation.val_loss, result.observation.train_loss))
    assert math.isfinite(result.reward)
    assert env.stats.faults == 1
    for _ in range(3):
        result = env.step(WAIT)
        assert result.info.fault is None and math.isfinite(result.observation.val_loss)
    assert _stage(env, "late") is SeedStage.DORMANT  # pruned -> embargoed -> resetting -> dormant


def test_same_seed_same_trajectory_and_fresh_host_per_episode(task):
    runs = []
    for _ in range(2):
        env = _env(task, seed=7, episode_length=3)
        env.reset()
        runs.append([env.step(a).observation for a in (_germinate(), WAIT, WAIT)])
    assert runs[0] == runs[1]
    env = _env(task, seed=7, episode_length=3)
    env.reset()
    first_weights = env.model.host.stem[0].weight.detach().clone()
    env.reset()
    assert env.episode == 1 and not torch.equal(env.model.host.stem[0].weight, first_weights)


def test_state_dict_resumes_the_next_episode_exactly(task):
    env = _env(task, seed=3, episode_length=2)
    env.reset()
    for _ in range(2):
        env.step(WAIT)
    saved = env.state_dict()
    env.reset()
    expected = [env.step(a).observation for a in (_germinate(), WAIT)]
    other = _env(task, seed=3, episode_length=2)
    other.load_state_dict(saved)
    other.reset()
    assert [other.step(a).observation for a in (_germinate(), WAIT)] == expected
