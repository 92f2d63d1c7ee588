"""A seed that makes the host loss non-finite: the env rolls back, the seed is pruned, a fault event is
logged and the run goes on to the end (a third-party blueprint plugin registered in-process)."""

from __future__ import annotations

import math

from esper_core.config.loading import load_config
from esper_core.hookspecs import hookimpl
from esper_core.plugins import registry_from_plugins
from esper_core.run.rundir import RunDir
from esper_core.run.runner import Runner
from esper_core.specs import BlueprintSpec
from esper_core.run.telemetry import read_jsonl
from support.run_configs import BUSY_HEURISTIC, SMALL
from support.run_fakes import NanSeed


class NanBlueprintPlugin:
    @hookimpl
    def esper_blueprints(self) -> list[BlueprintSpec]:
        return [BlueprintSpec(name="nan_seed", description="NaN once blended in", factory=NanSeed)]


def test_a_nan_seed_is_rolled_back_and_pruned_and_the_run_continues(tmp_path):
    config = load_config(
        overrides={
            **SMALL,
            "host": {"name": "tiny_cnn"},
            "policy": {"name": "heuristic", "options": BUSY_HEURISTIC},
            "actions": {"blueprints": ["nan_seed"], "tempos": [1, 2]},
            "run": {"envs": 1, "episode_length": 8, "rounds": 2, "seed": 0},
        }
    )
    runner = Runner.build(config, registry_from_plugins(NanBlueprintPlugin(), builtins=True))
    runner.use_run_dir(RunDir.create(tmp_path, "faults"))
    runner.start()
    outcome = runner.run(2)
    runner.close()
    assert outcome.status == "completed" and outcome.rounds_completed == 2
    events = read_jsonl(tmp_path / "faults" / "events.jsonl")
    faults = [e for e in events if e["type"] == "fault"]
    assert faults and all("non-finite" in f["reason"] and f["pruned_slots"] for f in faults)
    for fault in faults:
        key = (fault["env"], fault["episode"], fault["step"])
        pruned = [e for e in events if e["type"] == "seed_transition" and (e["env"], e["episode"], e["step"]) == key]
        assert {e["slot"] for e in pruned if e["to_stage"] == "PRUNED"} == set(fault["pruned_slots"])
        action = next(e for e in events if e["type"] == "action" and (e["env"], e["episode"], e["step"]) == key)
        assert action["ok"] is False
    steps = [e for e in events if e["type"] == "step"]
    assert all(math.isfinite(e["val_loss"]) and math.isfinite(e["train_loss"]) for e in steps)
    assert outcome.summary["seeds"]["faults"] == len(faults)
