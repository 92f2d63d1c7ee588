"""Named starting points for a run: nested override dicts applied on top of the defaults.

Precedence: defaults < preset < the host's adjustments to that preset < config file < CLI flags. A preset
sizes a run (envs, episode length, samples per epoch, and for the CPU demo the lifecycle's pace); it never
names a plugin or sets plugin options, so it fits any choice of host, task or policy. What one kind of host
needs beyond that (a transformer's sequences cost more per sample than a small image) the host declares
itself (``HostSpec.preset_adjustments``), so this table never names a host. ``auto`` picks ``cpu-quick``
without CUDA and ``gpu`` with it.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Any, Mapping

AUTO = "auto"


def frozen_tree(tree: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy of a nested override dict (tables all the way down; lists become tuples)."""
    return MappingProxyType({key: _frozen_value(value) for key, value in tree.items()})


def _frozen_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return frozen_tree(value)
    if isinstance(value, list):
        return tuple(_frozen_value(item) for item in value)
    return value


PRESETS: Mapping[str, Mapping[str, Any]] = frozen_tree(
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
        # of the time (benchmarks/fused_throughput.py, docs/results/2026-11-24-h100-fused-envs/; measured in
        # channels_last, before fused groups moved to NCHW).
        "gpu": {
            "run": {"envs": 32, "episode_length": 25, "rounds": 100},
            "training": {"batch_size": 128, "eval_batch_size": 1024},
        },
    }
)

#: Every name ``run.preset`` / ``--preset`` accepts.
PRESET_CHOICES: tuple[str, ...] = (AUTO, *PRESETS)

#: Keys a host's preset adjustments may not set: which host and which preset apply is decided before the
#: adjustments are looked up, so an adjustment to either would contradict the choice that selected it.
NOT_ADJUSTABLE: tuple[tuple[str, str], ...] = (("host", "name"), ("run", "preset"))


def adjustment_problems(owner: str, adjustments: Any) -> list[str]:
    """What is wrong with ``owner``'s per-preset adjustments (``{preset name: nested override dict}``) as a
    whole: preset names that do not exist, tables that are not tables, keys in ``NOT_ADJUSTABLE``. Keys
    inside are checked like any config layer when a configuration is loaded."""
    if not isinstance(adjustments, Mapping):
        return [f"{owner}: preset_adjustments must map preset names to tables, got {type(adjustments).__name__}"]
    problems = []
    for name, tree in adjustments.items():
        if name not in PRESETS:
            close = difflib.get_close_matches(str(name), list(PRESETS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{owner}: preset_adjustments names preset {name!r}{hint}; presets: {', '.join(PRESETS)}")
        elif not isinstance(tree, Mapping):
            problems.append(f"{owner}: preset_adjustments[{name!r}] must be a table (nested dict), got {type(tree).__name__}")
        else:
            for section, key in NOT_ADJUSTABLE:
                table = tree.get(section)
                if isinstance(table, Mapping) and key in table:
                    problems.append(f"{owner}: preset_adjustments[{name!r}] may not set {section}.{key}")
    return problems


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
