"""The ``scripted`` policy follows its plan per env (germinate, blend, fossilize one blueprint in one slot, or
never grow), and a plan entry that does not fit the run is a settings error naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from esper_core.config import load_config
from esper_core.config.loading import deep_merge
from esper_core.plugins import registry_from_plugins
from esper_core.run.rundir import RunDir
from esper_core.run.runner import Runner
from esper_core.run.telemetry import read_jsonl
from esper_core.validators import SettingError


def _runner(tmp_path, plan: list[str], **changes: Any) -> Runner:
    config = load_config(
        overrides=deep_merge({
            "task": {"name": "synthetic", "options": {"train_size": 128, "val_size": 32, "test_size": 32}},
            "training": {"epoch_samples": 32, "batch_size": 16, "val_samples": 32, "eval_batch_size": 32},
            "run": {"episode_length": 7, "envs": 2, "rounds": 1, "seed": 0},
            "lifecycle": {"min_training_epochs": 1},
            "actions": {"tempos": [1], "blueprints": ["conv_light", "norm"]},
            "host": {"name": "resnet_impaired"},
            "policy": {"name": "scripted", "options": {"plan": plan, "germinate_at": 1}},
            "device": {"device": "cpu", "threads": 1},
        }, changes),
        cuda_available=False,
    )

    class Quiet:
        quiet = True

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    return Runner.build(config, registry_from_plugins(builtins=True), run_dir=RunDir.create(tmp_path, "run"), progress=Quiet())


def test_each_env_follows_its_plan_entry(tmp_path) -> None:
    runner = _runner(tmp_path, ["none", "r0c1:norm"])
    runner.start()
    runner.run(1)
    runner.close()
    moves = [(e["env"], e["step"], e["slot"], e["to_stage"]) for e in read_jsonl(tmp_path / "run" / "events.jsonl")
             if e["type"] == "seed_transition"]
    assert all(env == 1 and slot == "r0c1" for env, _, slot, _ in moves), moves
    stages = [stage for _, _, _, stage in moves]
    assert stages == ["GERMINATED", "TRAINING", "BLENDING", "HOLDING", "FOSSILIZED"], stages
    assert min(step for _, step, _, _ in moves) == 1  # germinate_at
    episodes = {e["env"]: e for e in read_jsonl(tmp_path / "run" / "events.jsonl") if e["type"] == "episode_end"}
    assert episodes[0]["params_added"] == 0 and episodes[1]["params_added"] > 0


@pytest.mark.parametrize("entry, fragment", [("r9:norm", "slot of"), ("r0c0:lora", "enabled blueprint"), ("norm", "SLOT:BLUEPRINT")])
def test_a_plan_entry_that_does_not_fit_names_the_setting(tmp_path, entry, fragment) -> None:
    with pytest.raises(SettingError, match=f"policy.options.plan.*{fragment}"):
        _runner(tmp_path, [entry])
