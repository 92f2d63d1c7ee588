"""Runner: batched acting, legality checks, rollout storage, updates, telemetry, stop and exact resume."""

from __future__ import annotations

import json

import attrs
import pytest
import torch

from esper_core.run.checkpoint import CheckpointError, CheckpointMismatchError, latest_checkpoint, load_checkpoint
from esper_core.config import (
    ActionsConfig, DeviceConfig, EsperConfig, HostConfig, LifecycleConfig, PolicyConfig, RewardConfig, RunConfig,
    TaskConfig, TrainingConfig,
)
from esper_core.run.env import IllegalActionError
from esper_core.ops import HEADS
from esper_core.run.rundir import RunDir
from esper_core.run.runner import Runner
from esper_core.run.setup import build_run
from esper_core.events import WALL_CLOCK_EVENTS
from esper_core.run.telemetry import read_jsonl
from support.run_fakes import POLICIES, RunnerRegistry


def _config(policy: str = "random", rounds: int = 2, **run) -> EsperConfig:
    return EsperConfig(
        run=RunConfig(envs=2, episode_length=3, rounds=rounds, seed=5, **run),
        task=TaskConfig(name="toy"),
        host=HostConfig(name="toy"),
        policy=PolicyConfig(name=policy),
        reward=RewardConfig(name="acc"),
        training=TrainingConfig(batch_size=32, epoch_samples=48, eval_batch_size=64),
        lifecycle=LifecycleConfig(min_training_epochs=1, min_prune_age=1, embargo_epochs=1, resetting_epochs=1),
        actions=ActionsConfig(tempos=(1, 2), alpha_targets=(0.5, 1.0), blueprints=("conv",)),
        device=DeviceConfig(device="cpu"),
    )


def _runner(tmp_path, config: EsperConfig, name: str = "run", registry=None) -> Runner:
    registry = registry or RunnerRegistry(POLICIES)
    runner = Runner.build(config, registry, run_dir=RunDir.create(tmp_path, name))
    runner.start()
    return runner


def _reproducible(records):
    return [{k: v for k, v in r.items() if k != "timing"} for r in records if r.get("type") not in WALL_CLOCK_EVENTS]


def test_a_round_steps_every_env_and_writes_events_metrics_and_a_checkpoint(tmp_path):
    runner = _runner(tmp_path, _config())
    outcome = runner.run(2)
    assert outcome.status == "completed" and outcome.rounds_completed == 2
    run = runner.run_dir
    events = read_jsonl(run.events_path)
    actions = [e for e in events if e["type"] == "action"]
    assert len(actions) == 2 * 2 * 3  # rounds x envs x steps
    assert all(all(a["legal"].values()) for a in actions)
    assert {a["env"] for a in actions} == {0, 1}
    assert [e["type"] for e in events][0] == "run_start" and events[-1]["type"] == "run_end"
    metrics = read_jsonl(run.metrics_path)
    assert [m["round"] for m in metrics] == [0, 1] and metrics[-1]["env_steps_total"] == 12
    assert load_checkpoint(latest_checkpoint(run.checkpoints))["round"] == 2
    assert run.read_summary()["status"] == "completed"
    assert any(e["type"] == "action" for e in runner.registry.events)  # fan-out to the plugin hook


def test_episode_return_is_the_sum_of_step_rewards(tmp_path):
    runner = _runner(tmp_path, _config())
    runner.run(2)
    events = read_jsonl(runner.run_dir.events_path)
    for end in (e for e in events if e["type"] == "episode_end"):
        rewards = [e["reward"] for e in events if e["type"] == "reward" and (e["env"], e["episode"]) == (end["env"], end["episode"])]
        assert len(rewards) == 3
        assert end["episode_return"] == pytest.approx(sum(rewards), abs=1e-12)


def test_a_learning_policy_gets_the_rollout_once_per_round_and_state_resets_at_episode_ends(tmp_path):
    runner = _runner(tmp_path, _config("learner"))
    runner.run(2)
    policy = runner.policy
    assert len(policy.updates) == 2
    first = policy.updates[0]
    assert first["dones"].tolist() == [[False, False], [False, False], [True, True]]
    assert first["obs"].shape == (3, 2, 2) and first["obs"][:, :, 1].tolist() == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    assert [d.tolist() for d in policy.resets] == [[True, True], [True, True]]
    metrics = read_jsonl(runner.run_dir.metrics_path)
    assert metrics[1]["policy"] == {"loss": 1.0}


@pytest.mark.parametrize("policy, why", [("advance", "actual state"), ("ignores", "stored mask")])
def test_an_illegal_action_raises_and_is_never_executed(tmp_path, policy, why):
    runner = _runner(tmp_path, _config(policy))
    with pytest.raises(IllegalActionError, match=why):
        runner.run(1)
    assert all(env.observation.epoch == 0 for env in runner.envs)


def test_resume_continues_exactly(tmp_path):
    straight = _runner(tmp_path, _config("learner", rounds=2), "straight")
    straight.run(2)
    first = _runner(tmp_path, _config("learner", rounds=2), "split")
    first.run(1)
    path = latest_checkpoint(first.run_dir.checkpoints)
    resumed = Runner.build(_config("learner", rounds=2), RunnerRegistry(POLICIES), run_dir=first.run_dir)
    resumed.restore(load_checkpoint(path), str(path))
    resumed.run(1)
    for name in ("events_path", "metrics_path"):
        a = read_jsonl(getattr(straight.run_dir, name))
        b = read_jsonl(getattr(first.run_dir, name))
        assert _reproducible(a) == _reproducible(b)
    assert torch.equal(straight.policy.weight, resumed.policy.weight)


def test_a_stop_request_finishes_the_step_and_resume_replays_the_round(tmp_path):
    straight = _runner(tmp_path, _config(rounds=2), "straight")
    straight.run(2)
    stopped = _runner(tmp_path, _config(rounds=2), "stopped")
    stopped.run(1)
    env = stopped.envs[0]
    finish = env.finish_step

    def finish_then_stop():  # Ctrl-C arrives while the first env finishes its step
        stopped.request_stop()
        return finish()

    env.finish_step = finish_then_stop
    outcome = stopped.run(1)
    assert outcome.status == "interrupted" and outcome.rounds_completed == 1
    events = read_jsonl(stopped.run_dir.events_path)
    assert [e["type"] for e in events][-2:] == ["run_interrupted", "run_end"]
    assert sum(1 for e in events if e["type"] == "action" and e["round"] == 1) == 2  # one step, both envs
    path = latest_checkpoint(stopped.run_dir.checkpoints)
    payload = load_checkpoint(path)
    assert payload["round"] == 1
    resumed = Runner.build(_config(rounds=2), RunnerRegistry(POLICIES), run_dir=stopped.run_dir)
    resumed.restore(payload, str(path))
    resumed.run(1)
    assert _reproducible(read_jsonl(straight.run_dir.events_path)) == _reproducible(read_jsonl(stopped.run_dir.events_path))


def test_resume_refuses_another_action_layout_with_a_diff(tmp_path):
    runner = _runner(tmp_path, _config())
    runner.run(1)
    payload = load_checkpoint(latest_checkpoint(runner.run_dir.checkpoints))
    changed = attrs.evolve(_config(), actions=ActionsConfig(tempos=(1, 2, 3), alpha_targets=(0.5, 1.0), blueprints=("conv",)))
    other = Runner.build(changed, RunnerRegistry(POLICIES))
    with pytest.raises(CheckpointMismatchError, match=r"'tempo'.*this run only: \[3\]"):
        other.restore(payload, "ck.pt")


def test_resume_refuses_another_plugin_set(tmp_path):
    runner = _runner(tmp_path, _config())
    runner.run(1)
    payload = load_checkpoint(latest_checkpoint(runner.run_dir.checkpoints))
    other = Runner.build(_config("learner"), RunnerRegistry(POLICIES))
    with pytest.raises(CheckpointMismatchError, match="policy:random.*\n.*policy:learner|policy:learner.*\n.*policy:random"):
        other.restore(payload, "ck.pt")


def test_heads_are_logged_with_values_and_relevance(tmp_path):
    runner = _runner(tmp_path, _config())
    runner.run(1)
    action = next(e for e in read_jsonl(runner.run_dir.events_path) if e["type"] == "action")
    assert list(action["indices"]) == list(HEADS) and list(action["values"]) == list(HEADS)
    assert action["relevant"][0] == "op"


def test_resume_refuses_another_kind_of_device(tmp_path):
    runner = _runner(tmp_path, _config())
    runner.run(1)
    payload = load_checkpoint(latest_checkpoint(runner.run_dir.checkpoints))
    payload["devices"] = ["cuda:0", "cuda:0"]
    other = Runner.build(_config(), RunnerRegistry(POLICIES))
    with pytest.raises(CheckpointError, match="same kind of device"):
        other.restore(payload, "ck.pt")


def test_an_evaluation_elsewhere_restores_on_another_kind_of_device_with_fresh_generators(tmp_path):
    """``esper eval --device``: the policy and episode counters come back; the generators, whose states do
    not carry across device kinds (a CUDA state is another size), start afresh instead of failing."""
    runner = _runner(tmp_path, _config())
    runner.run(1)
    payload = load_checkpoint(latest_checkpoint(runner.run_dir.checkpoints))
    payload["devices"] = ["cuda:0", "cuda:0"]
    for state in payload["envs"]:
        state["generator"] = state["init_generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA-sized state
    other = Runner.build(_config(), RunnerRegistry(POLICIES))
    fresh = [env.state_dict() for env in other.envs]
    other.restore(payload, "ck.pt", announce=False, any_device=True)
    for env, before, saved in zip(other.envs, fresh, payload["envs"]):
        now = env.state_dict()
        assert now["episode"] == saved["episode"] and torch.equal(now["generator"], before["generator"])
    assert len(other.evaluate()) == 2


def test_build_run_wires_everything_once_and_two_builds_from_one_config_are_the_same_run(tmp_path) -> None:
    """``build_run`` is the one place a run is put together; the runner only plays what it was given."""
    config, notices = _config(), []
    parts = build_run(config, RunnerRegistry(POLICIES), notice=notices.append)
    assert len(parts.envs) == config.run.envs and [env.index for env in parts.envs] == [0, 1]
    assert len({env.seed for env in parts.envs}) == config.run.envs  # independent streams
    assert parts.policy_device == parts.devices[0] and parts.space.blueprints[1:] == ("conv",)
    assert set(parts.plugins) >= {"task:toy", "host:toy", "policy:random", "reward:acc", "blueprint:conv"}
    runner = Runner(parts)
    assert runner.envs is parts.envs and runner.policy is parts.policy
    again = Runner.build(config, RunnerRegistry(POLICIES))
    for first, second in zip(parts.envs, again.envs):
        assert first.seed == second.seed
    assert notices == []  # the task was named: nothing chosen on the user's behalf


def test_a_mask_that_changes_during_the_env_step_is_caught_at_that_step(tmp_path):
    """The policy output's masks pass the legality check, then change before they are stored (as an
    all-False mask row appeared at step 13 after a resume on a shared H100): the runner's store raises
    at that step, naming it, instead of the update failing a whole round later."""
    from esper_core.rl.rollout import RolloutError

    runner = _runner(tmp_path, _config("learner", rounds=1))
    act, step_envs, outputs = runner.policy.act, runner._step_envs, []

    def remember(*args, **kwargs):
        outputs.append(act(*args, **kwargs))
        return outputs[-1]

    def corrupt_then_step(actions):
        if runner._step_index == 1:
            outputs[-1].masks["slot"].zero_()  # after check_legal, before _store
        return step_envs(actions)

    runner.policy.act, runner._step_envs = remember, corrupt_then_step
    with pytest.raises(RolloutError, match="(?s)rollout step 1 stored unusable data.*head 'slot', env 0.*buffer's row"):
        runner.run(1)
    assert runner.policy.updates == []  # never reached the update


def test_a_round_that_raises_leaves_a_true_summary_of_the_last_round_boundary(tmp_path):
    """Regression: a run that died in its third round kept summary.json from an earlier stop (an H100
    study run said 13 rounds after finishing 15). Now the summary says failed, names the error and holds
    the totals of the failed round's start."""
    runner = _runner(tmp_path, _config("learner", rounds=3))
    runner.run(2)
    after_two = json.loads(runner.run_dir.summary_path.read_text())
    policy = runner.policy

    def broken_update(rollout):
        raise RuntimeError("the update broke\nsecond line")

    policy.update = broken_update
    with pytest.raises(RuntimeError, match="the update broke"):
        runner.run(1)
    summary = json.loads(runner.run_dir.summary_path.read_text())
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: the update broke"
    assert summary["rounds_completed"] == 2
    assert summary["env_steps"] == after_two["env_steps"] and summary["seeds"] == after_two["seeds"]
