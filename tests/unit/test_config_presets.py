"""Presets: read-only nested overrides, ``auto`` follows the hardware, unknown names list the choices."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from esper_core.config import EsperConfig
from esper_core.config.loading import load_config
from esper_core.config.presets import PRESET_CHOICES, PRESETS, UnknownPresetError, preset_overrides, resolve_preset


def test_auto_picks_cpu_quick_without_cuda_and_gpu_with_it() -> None:
    assert resolve_preset("auto", cuda_available=False) == "cpu-quick"
    assert resolve_preset("auto", cuda_available=True) == "gpu"
    assert resolve_preset("gpu", cuda_available=False) == "gpu"


def test_unknown_preset_lists_the_choices() -> None:
    with pytest.raises(UnknownPresetError, match="unknown preset 'cpu'.*choices: auto, cpu-quick, gpu"):
        resolve_preset("cpu", cuda_available=False)
    assert PRESET_CHOICES == ("auto", "cpu-quick", "gpu")


def test_presets_are_read_only_all_the_way_down() -> None:
    with pytest.raises(TypeError):
        PRESETS["gpu"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        PRESETS["gpu"]["run"]["envs"] = 1  # type: ignore[index]


def _leaves(tree: Mapping, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out.extend(_leaves(value, path + ".") if isinstance(value, Mapping) else [path])
    return out


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_loads_and_sets_only_sizing_never_plugins(name: str) -> None:
    cfg = load_config(preset=name, cuda_available=False)
    assert cfg.run.preset == name
    for leaf in _leaves(preset_overrides(name, cuda_available=False)):
        assert ".options" not in leaf and not leaf.endswith(".name"), leaf


def test_cpu_quick_is_small_and_gpu_is_bigger() -> None:
    quick = load_config(preset="cpu-quick", cuda_available=False)
    gpu = load_config(preset="gpu", cuda_available=False)
    assert quick.training.epoch_samples is not None and quick.training.epoch_samples <= 4096
    default = EsperConfig().run
    assert quick.run.envs <= 2
    assert quick.run.envs * quick.run.episode_length * quick.run.rounds < default.envs * default.episode_length * default.rounds
    assert gpu.run.envs == 32  # one fused group: measured to pay on an H100 (docs/results/2026-11-24-h100-fused-envs)
    assert gpu.device.fused == "auto"  # fused on CUDA
    assert gpu.run.episode_length > quick.run.episode_length and gpu.run.rounds > quick.run.rounds


def test_cpu_quick_leaves_room_to_fossilize_within_an_episode() -> None:
    """The demo must be able to show a network grow: germinate, train, blend at the slowest tempo, hold
    and fossilize fit an episode with room to spare, and no prune is allowed before that could happen."""
    quick = load_config(preset="cpu-quick", cuda_available=False)
    life = quick.lifecycle
    # GERMINATE, its first epoch, TRAINING, ADVANCE, blending, ADVANCE to HOLDING, FOSSILIZE
    shortest = 1 + 1 + life.min_training_epochs + 1 + max(quick.actions.tempos) + 1 + 1
    assert shortest + 5 <= quick.run.episode_length  # slack for the steps an untrained policy wastes
    assert life.min_prune_age >= shortest - 1
