"""Small, fast run configurations for the integration tests (synthetic task, tiny sizes, one thread)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from esper_core.config.loading import deep_merge

#: Tiny synthetic task and host training: an env step takes a fraction of a second on one CPU thread.
SMALL: dict[str, Any] = {
    "task": {"name": "synthetic", "options": {"train_size": 128, "val_size": 64, "test_size": 32, "difficulty": 0.0}},
    "training": {"epoch_samples": 64, "batch_size": 32, "eval_batch_size": 64},
    "lifecycle": {"min_training_epochs": 1, "min_prune_age": 2, "embargo_epochs": 1, "resetting_epochs": 1},
    "actions": {"tempos": [1, 2]},
    "device": {"device": "cpu", "threads": 1},
    "run": {"envs": 2, "episode_length": 6, "rounds": 2, "seed": 0},
}

#: Heuristic thresholds that make lifecycle traffic likely at this scale: germinate after one flat epoch,
#: fossilize any seed measured to help at all, prune a holder after two epochs without earning it.
BUSY_HEURISTIC: dict[str, Any] = {"plateau_epochs": 1, "max_holding_epochs": 2, "fossilize_min_contribution": 0.0}

#: A small ppo_v2 (the default 512-wide network is needlessly slow for a test).
SMALL_PPO: dict[str, Any] = {"feature_dim": 32, "lstm_dim": 32}


def write_config(directory: Path, *overrides: dict[str, Any]) -> Path:
    tree: dict[str, Any] = SMALL
    for override in overrides:
        tree = deep_merge(tree, override)
    path = Path(directory) / "esper.json"
    path.write_text(json.dumps(tree))
    return path


def reproducible(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without wall-clock values: run_start/run_end events and metrics' timing section."""
    from esper_core.events import WALL_CLOCK_EVENTS

    return [{k: v for k, v in r.items() if k != "timing"} for r in records if r.get("type") not in WALL_CLOCK_EVENTS]
