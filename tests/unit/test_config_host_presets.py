"""A host's adjustments to a preset: layered as defaults < preset < host's adjustments < file < flags,
checked as strictly as any layer (errors name the host, the preset and the key), declared on the plugin's
``HostSpec`` and never named in the core; hosts that declare none (resnet) resolve exactly as before."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper_core.config import EsperConfig, RunConfig, TrainingConfig
from esper_core.config.loading import ConfigError, config_to_dict, load_config
from esper_core.config.presets import PRESETS
from esper_core.plugins import load_registry, preset_adjustments_of
from esper_core.specs import HostSpec
from support.sequence_fakes import tiny_python_tree

KEYS = (("run", "episode_length"), ("run", "rounds"), ("run", "envs"), ("training", "batch_size"))
LAYERS = ("host", "file", "cli")
sizes = st.integers(1, 500)


def lookup_for(host: str, adjustments: Mapping[str, Mapping[str, Any]]):
    """A ``load_config`` lookup where only ``host`` adjusts presets, as a registry's would."""
    return lambda name, preset: adjustments.get(preset, {}) if name == host else {}


def _load(file_tree: Mapping[str, Any] | None = None, **kwargs: Any) -> EsperConfig:
    with tempfile.TemporaryDirectory() as folder:
        path = None
        if file_tree is not None:
            path = Path(folder) / "config.json"
            path.write_text(json.dumps(file_tree))
        return load_config(path, cuda_available=False, **kwargs)


def _tree(values: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    tree: dict[str, dict[str, int]] = {}
    for (section, key), value in values.items():
        tree.setdefault(section, {})[key] = value
    return tree


@given(
    st.fixed_dictionaries({layer: st.dictionaries(st.sampled_from(KEYS), sizes, max_size=3) for layer in LAYERS}),
    st.sampled_from(sorted(PRESETS)),
    st.sampled_from(["file", "cli"]),
)
def test_highest_layer_that_sets_a_key_wins_with_the_host_between_preset_and_file(
    layers: dict[str, dict[tuple[str, str], int]], preset: str, chooser: str
) -> None:
    trees = {layer: _tree(values) for layer, values in layers.items()}
    trees[chooser] = {**trees[chooser], "host": {"name": "grower"}}  # the file or the flags choose the host
    cfg = _load(
        trees["file"], overrides=trees["cli"], preset=preset,
        preset_adjustments=lookup_for("grower", {preset: trees["host"]}),
    )
    defaults = {"run": RunConfig(), "training": TrainingConfig()}
    for section, key in KEYS:
        expected = getattr(defaults[section], key)
        expected = PRESETS[preset].get(section, {}).get(key, expected)
        for layer in LAYERS:
            expected = layers[layer].get((section, key), expected)
        assert getattr(getattr(cfg, section), key) == expected, (section, key)


def test_adjustments_apply_only_to_their_host_and_their_preset() -> None:
    lookup = lookup_for("grower", {"cpu-quick": {"training": {"batch_size": 7}}})
    chosen = {"host": {"name": "grower"}}
    assert _load(overrides=chosen, preset="cpu-quick", preset_adjustments=lookup).training.batch_size == 7
    assert _load(overrides=chosen, preset="gpu", preset_adjustments=lookup) == _load(overrides=chosen, preset="gpu")
    other = {"host": {"name": "resnet"}}
    assert _load(overrides=other, preset="cpu-quick", preset_adjustments=lookup) == _load(overrides=other, preset="cpu-quick")
    # `auto` resolves first, then the resolved preset's adjustments apply
    assert _load(overrides=chosen, preset="auto", preset_adjustments=lookup).training.batch_size == 7


def test_an_unknown_key_names_the_host_the_preset_and_the_key() -> None:
    lookup = lookup_for("grower", {"cpu-quick": {"training": {"batch_sise": 8}, "runn": {"envs": 1}}})
    with pytest.raises(ConfigError) as caught:
        _load(overrides={"host": {"name": "grower"}}, preset="cpu-quick", preset_adjustments=lookup)
    text = str(caught.value)
    assert "host 'grower' adjustments to preset 'cpu-quick': training.batch_sise: unknown key; did you mean batch_size?" in text
    assert "host 'grower' adjustments to preset 'cpu-quick': runn: unknown key" in text


def test_a_bad_value_names_the_host_layer_unless_a_higher_layer_replaces_it() -> None:
    lookup = lookup_for("grower", {"cpu-quick": {"training": {"batch_size": 0}}})
    chosen = {"host": {"name": "grower"}}
    with pytest.raises(ConfigError, match=r"host 'grower' adjustments to preset 'cpu-quick': training\.batch_size"):
        _load(overrides=chosen, preset="cpu-quick", preset_adjustments=lookup)
    fixed = _load(overrides={**chosen, "training": {"batch_size": 9}}, preset="cpu-quick", preset_adjustments=lookup)
    assert fixed.training.batch_size == 9


def test_adjustments_may_not_choose_the_host_or_the_preset() -> None:
    lookup = lookup_for("grower", {"cpu-quick": {"host": {"name": "resnet"}}})
    with pytest.raises(ConfigError, match=r"host 'grower'.*may not set host\.name"):
        _load(overrides={"host": {"name": "grower"}}, preset="cpu-quick", preset_adjustments=lookup)
    with pytest.raises(ValueError, match=r"host 'grower'.*may not set run\.preset"):
        HostSpec(name="grower", description="", factory=lambda o, i: None, topology="cnn",
                 preset_adjustments={"gpu": {"run": {"preset": "cpu-quick"}}})


def test_a_spec_naming_a_preset_that_does_not_exist_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"host 'grower': .*preset 'cpu_quick' \(did you mean cpu-quick\?\); presets: cpu-quick, gpu"):
        HostSpec(name="grower", description="", factory=lambda o, i: None, topology="cnn",
                 preset_adjustments={"cpu_quick": {"run": {"envs": 1}}})
    with pytest.raises(ValueError, match=r"preset_adjustments\['gpu'\] must be a table"):
        HostSpec(name="grower", description="", factory=lambda o, i: None, topology="cnn", preset_adjustments={"gpu": 3})


def test_a_spec_s_adjustments_are_read_only_copies() -> None:
    given_tree = {"cpu-quick": {"training": {"batch_size": 8}, "actions": {"tempos": [1, 2]}}}
    spec = HostSpec(name="grower", description="", factory=lambda o, i: None, topology="cnn", preset_adjustments=given_tree)
    given_tree["cpu-quick"]["training"]["batch_size"] = 99
    assert spec.preset_adjustments["cpu-quick"]["training"]["batch_size"] == 8
    with pytest.raises(TypeError):
        spec.preset_adjustments["cpu-quick"]["training"]["batch_size"] = 1  # type: ignore[index]
    assert spec.preset_adjustments["cpu-quick"]["actions"]["tempos"] == (1, 2)


# ----------------------------------------------------------------------------------- built-in hosts
@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_built_in_host_s_adjustments_load_and_never_choose_plugins(registry, preset: str) -> None:
    lookup = preset_adjustments_of(registry)
    for host in registry.names("host"):
        cfg = _load(overrides={"host": {"name": host}}, preset=preset, preset_adjustments=lookup)
        assert cfg.host.name == host and cfg.run.preset == preset
        for section in lookup(host, preset).values():
            assert "name" not in section


@pytest.mark.parametrize("host", ["resnet", "resnet_impaired", "tiny_cnn", None])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_cnn_hosts_resolve_exactly_as_before(registry, host: str | None, preset: str) -> None:
    """resnet declares no adjustments: its effective config is the global preset's, pinned here."""
    chosen = {"host": {"name": host}} if host else None
    adjusted = _load(overrides=chosen, preset=preset, preset_adjustments=preset_adjustments_of(registry))
    assert adjusted == _load(overrides=chosen, preset=preset)
    if preset == "cpu-quick":
        assert (adjusted.run.envs, adjusted.run.episode_length, adjusted.run.rounds) == (2, 15, 2)
        training = adjusted.training
        assert (training.batch_size, training.epoch_samples, training.val_samples, training.eval_batch_size) == (32, 384, 256, 256)


def test_gpt_adjusts_cpu_quick_and_a_file_or_flag_still_wins(registry) -> None:
    lookup = preset_adjustments_of(registry)
    adjustments = lookup("gpt", "cpu-quick")
    assert adjustments, "gpt declares its CPU sizing"
    chosen = {"host": {"name": "gpt"}}
    cfg = _load(overrides=chosen, preset="cpu-quick", preset_adjustments=lookup)
    for section, table in adjustments.items():
        for key, value in table.items():
            assert getattr(getattr(cfg, section), key) == value, (section, key)
    from_file = _load({"training": {"epoch_samples": 5}}, overrides=chosen, preset="cpu-quick", preset_adjustments=lookup)
    assert from_file.training.epoch_samples == 5
    from_flag = _load(overrides={**chosen, "training": {"epoch_samples": None}}, preset="cpu-quick", preset_adjustments=lookup)
    assert from_flag.training.epoch_samples is None  # an explicit null (whole split) wins too


def test_a_run_s_config_json_loads_back_identically_whatever_the_adjustments(registry) -> None:
    lookup = preset_adjustments_of(registry)
    cfg = _load(overrides={"host": {"name": "gpt"}, "training": {"val_samples": None}}, preset="cpu-quick", preset_adjustments=lookup)
    recorded = {"config": config_to_dict(cfg), "esper_version": "x", "action_layout": {}}
    assert _load(recorded, preset_adjustments=lookup) == cfg
    assert _load(recorded, preset_adjustments=lookup_for("gpt", {"cpu-quick": {"training": {"val_samples": 3}}})) == cfg


def test_a_spec_s_frozen_lists_load_as_a_file_s_lists_so_the_recorded_config_loads_back_equal() -> None:
    spec = HostSpec(name="grower", description="", factory=lambda o, i: None, topology="cnn",
                    preset_adjustments={"cpu-quick": {"host": {"options": {"slots_after": [0, 1]}}, "actions": {"tempos": [1]}}})
    lookup = lambda host, preset: spec.preset_adjustments.get(preset, {}) if host == spec.name else {}  # noqa: E731
    cfg = _load(overrides={"host": {"name": "grower"}}, preset="cpu-quick", preset_adjustments=lookup)
    assert cfg.host.options == {"slots_after": [0, 1]} and cfg.actions.tempos == (1,)
    assert _load({"config": config_to_dict(cfg), "esper_version": "x", "action_layout": {}}, preset_adjustments=lookup) == cfg


# ------------------------------------------------------------------------------------ on the command line
def test_config_show_and_run_resolve_gpt_alike_and_its_config_json_runs_again(tmp_path: Path, registry) -> None:
    from click.testing import CliRunner

    from esper_core.cli import main
    from esper_core.run.config_document import describe_config, resolved_config

    flags = (
        "--host", "gpt", "--task", "pysource", "--preset", "cpu-quick", "--device", "cpu", "--envs", "1",
        "--rounds", "1", "--episode-length", "2", "--name", "r", "--run-dir", str(tmp_path / "runs"),
        "--set", f"task.options.root={tiny_python_tree(tmp_path / 'py')}", "--set", "task.options.sequence_length=8",
        "--set", "training.epoch_samples=32", "--set", "host.options.width=16", "--set", "host.options.heads=2",
        "--set", "policy.options.feature_dim=16", "--set", "policy.options.lstm_dim=16",
    )
    shown = CliRunner().invoke(main, ["config", "show", "--json", *flags])
    assert shown.exit_code == 0, shown.output
    ran = CliRunner().invoke(main, ["run", "--quiet", *flags])
    assert ran.exit_code == 0, ran.output
    recorded = tmp_path / "runs" / "r" / "config.json"
    shown_path = tmp_path / "shown.json"
    shown_path.write_text(shown.stdout)
    lookup = preset_adjustments_of(registry)
    resolved = lambda path: resolved_config(describe_config(load_config(path, preset_adjustments=lookup), registry))  # noqa: E731
    assert resolved(recorded) == resolved(shown_path)  # what config show printed is what the run used
    training = resolved(recorded).training
    assert (training.batch_size, training.val_samples, training.epoch_samples) == (16, 256, 32)  # host's; the flag's
    again = CliRunner().invoke(main, ["config", "show", "--json", "--config", str(recorded)])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(shown.stdout)  # the recorded config runs again, identically
