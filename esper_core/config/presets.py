"""Named starting points for a run: nested override dicts applied on top of the defaults.

Precedence: defaults < preset < config file < CLI flags. A preset sizes a run (envs, episode length,
samples per epoch, and for the CPU demo the lifecycle's pace); it never names a plugin or sets plugin
options, so it fits any choice of host, task or policy. ``auto`` picks ``cpu-quick`` without CUDA and ``gpu`` with it.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Any, Mapping

AUTO = "auto"


def _frozen(tree: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType({key: _frozen(value) if isinstance(value, Mapping) else value for key, value in tree.items()})


PRESETS: Mapping[str, Mapping[str, Any]] = _frozen(
    {
        # Finishes in minutes on a laptop-class CPU: the default `esper run` without a GPU. Sized on a
        # 2-core CPU shared with other work so `esper run --host resnet --policy ppo_v2` (or heuristic)
        # takes a minute or two, startup included: 2 envs x 2 episodes of 15 steps, 384-sample epochs in
        # batches of 32 (on a CPU a small batch costs about the same per sample and learns far more per
        # sample than 128: 0.38 vs 0.15 validation accuracy after 11 x 512 samples).
        # The lifecycle is shortened so a new user sees a network grow: one live seed at a time, one
        # epoch of TRAINING, blending over 1-2 epochs and no prune before age 8. With the default gates
        # and 10-step episodes an untrained ppo_v2 pruned or ran out of episode before fossilizing: 2 of
        # 5 seeds saw a fossilization; with these, 5 of 5 (measured: docs/architecture.md, "CPU demo").
        "cpu-quick": {
            "run": {"envs": 2, "episode_length": 15, "rounds": 2},
            "training": {"batch_size": 32, "epoch_samples": 384, "val_samples": 256, "eval_batch_size": 256},
            "lifecycle": {"min_training_epochs": 1, "min_prune_age": 8, "max_seeds": 1},
            "actions": {"tempos": (1, 2)},
        },
        # A real study on one GPU: episodes long enough for seeds to blend, hold and fossilize, and 32 envs
        # trained as one fused group (device.fused): on an H100 they train their hosts at 14-18x the
        # images/s of envs one after another and step 3-4x faster end to end, with the PPO update under 1%
        # of the time (benchmarks/fused_throughput.py, docs/results/2026-11-24-h100-fused-envs/).
        "gpu": {
            "run": {"envs": 32, "episode_length": 25, "rounds": 100},
            "training": {"batch_size": 128, "eval_batch_size": 1024},
        },
    }
)

#: Every name ``run.preset`` / ``--preset`` accepts.
PRESET_CHOICES: tuple[str, ...] = (AUTO, *PRESETS)


class UnknownPresetError(ValueError):
    """A preset name that does not exist; the message lists the choices."""

    def __init__(self, name: str) -> None:
        self.name = name
        close = difflib.get_close_matches(name, PRESET_CHOICES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        super().__init__(f"unknown preset {name!r}{hint}; choices: {', '.join(PRESET_CHOICES)}")


def resolve_preset(name: str, cuda_available: bool) -> str:
    """The concrete preset a name stands for: ``auto`` follows the hardware, other names stay as they are."""
    if name == AUTO:
        return "gpu" if cuda_available else "cpu-quick"
    if name not in PRESETS:
        raise UnknownPresetError(name)
    return name


def preset_overrides(name: str, cuda_available: bool) -> Mapping[str, Any]:
    """The nested override dict of the preset ``name`` resolves to (read-only)."""
    return PRESETS[resolve_preset(name, cuda_available)]
