"""Strict configuration loading: every bad key is named with its path and file; nothing is half-applied."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import attrs
import pytest
from attrs import validators as v

from esper_core.config import DeviceConfig, EsperConfig, LifecycleConfig, SettingError, TrainingConfig
from esper_core.config.loading import ConfigError, config_to_dict, load_config, structure_options
from esper_core.config.presets import PRESETS
from esper_core.specs import NoOptions, PolicySpec


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _only_problem(error: ConfigError):
    assert len(error.problems) == 1, error.problems
    return error.problems[0]


def test_misspelt_key_in_toml_is_named_with_a_suggestion_and_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.toml", "[training]\nseed_lrr = 0.2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, cuda_available=False)
    problem = _only_problem(caught.value)
    assert (problem.key_path, problem.source) == ("training.seed_lrr", str(path))
    assert "did you mean seed_lr?" in problem.message
    assert "training.seed_lrr" in str(caught.value) and str(path) in str(caught.value)


def test_wrong_type_names_key_and_expected_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.toml", '[training]\nlr = "big"\nepoch_samples = "no"\n[run]\nenvs = 2.5\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, cuda_available=False)
    messages = {problem.key_path: problem.message for problem in caught.value.problems}
    assert messages["training.lr"] == "expected float, got str 'big'"
    assert messages["training.epoch_samples"] == "expected int | None, got str 'no'"
    assert messages["run.envs"] == "expected int, got float 2.5"
    assert {problem.source for problem in caught.value.problems} == {str(path)}


@pytest.mark.parametrize(
    ("data", "key_path", "fragment"),
    [
        ({"trainng": {}}, "trainng", "did you mean training?"),
        ({"actions": {"tempos": "358"}}, "actions.tempos", "expected tuple[int, ...], got str"),
        ({"actions": {"tempos": [3, "5"]}}, "actions.tempos[1]", "expected int, got str '5'"),
        ({"training": 3}, "training", "expected a table (mapping), got int 3"),
        ({"training": {"momentum": 1.0}}, "training.momentum", "in [0.0, 1.0)"),
        ({"run": {"rounds": 0}}, "run.rounds", "integer in [1, "),
        ({"run": {"download": True}}, "run.download", "unknown key"),
        ({"device": {"bf16": 1}}, "device.bf16", "expected bool, got int 1"),
        ({"lifecycle": {"germinate_curve": "zigzag"}}, "lifecycle.germinate_curve", "must be one of linear"),
        ({"task": {"options": []}}, "task.options", "expected dict[str, Any]"),
    ],
)
def test_json_file_errors_name_the_key_path(tmp_path: Path, data: dict, key_path: str, fragment: str) -> None:
    path = _write(tmp_path, "run.json", json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load_config(path, cuda_available=False)
    problem = _only_problem(caught.value)
    assert problem.key_path == key_path
    assert fragment in problem.message
    assert problem.source == str(path)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.toml", "[training]\nseed_lrr = 0.2\nlr = 'fast'\n[trainig]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, cuda_available=False)
    assert sorted(problem.key_path for problem in caught.value.problems) == ["trainig", "training.lr", "training.seed_lrr"]


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.toml", "[run\nenvs = 1", "invalid TOML"),
        ("bad.json", "{'run': 1}", "invalid JSON"),
        ("list.json", "[1, 2]", "expected a table (JSON object), got list"),
        ("run.yaml", "run: {}", "unsupported file type '.yaml'; use .toml or .json"),
    ],
)
def test_unreadable_files_are_config_errors_naming_the_file(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, cuda_available=False)
    assert fragment in str(caught.value) and str(path) in str(caught.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: file not found"):
        load_config(tmp_path / "nope.toml", cuda_available=False)


def test_precedence_defaults_preset_file_cli(tmp_path: Path) -> None:
    default = EsperConfig().run.episode_length
    cpu_quick = PRESETS["cpu-quick"]["run"]["episode_length"]
    assert default != cpu_quick
    path = _write(tmp_path, "run.toml", "[run]\nepisode_length = 5\nenvs = 3\n")

    assert load_config(cuda_available=False).run.episode_length == cpu_quick
    from_file = load_config(path, cuda_available=False)
    assert (from_file.run.episode_length, from_file.run.envs) == (5, 3)
    from_cli = load_config(path, {"run": {"episode_length": 7}}, cuda_available=False)
    assert (from_cli.run.episode_length, from_cli.run.envs) == (7, 3)
    # untouched keys keep their defaults whatever the layers
    assert from_cli.device == DeviceConfig()
    assert from_cli.lifecycle == attrs.evolve(LifecycleConfig(), **PRESETS["cpu-quick"].get("lifecycle", {}))


def test_partial_tables_merge_into_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.toml", "[training]\nseed_lr = 0.01\n")
    training = load_config(path, cuda_available=False).training
    expected = attrs.evolve(TrainingConfig(), **PRESETS["cpu-quick"]["training"], seed_lr=0.01)
    assert training == expected


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("[ppo]\nclip_ratio = 0.3\nlr = 1e-3\n", {"ppo.clip_ratio": "policy.options.clip_ratio", "ppo.lr": "policy.options.lr"}),
        ("[ppo.prob_floors]\nop = 0.15\n", {"ppo.prob_floors": "policy.options.prob_floors"}),
        ("ppo = 3\n", {"ppo": "policy.options"}),
    ],
)
def test_the_retired_ppo_section_names_each_key_s_new_home(tmp_path: Path, text: str, problems: dict) -> None:
    path = _write(tmp_path, "old.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, cuda_available=False)
    found = {problem.key_path: problem.message for problem in caught.value.problems}
    assert found == {old: f"moved to {new} (the [ppo] section is gone since 0.2)" for old, new in problems.items()}
    assert {problem.source for problem in caught.value.problems} == {str(path)}


def test_preset_choice_explicit_then_file_then_auto(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.toml", '[run]\npreset = "gpu"\n')
    assert load_config(cuda_available=False).run.preset == "cpu-quick"
    assert load_config(cuda_available=True).run.preset == "gpu"
    assert load_config(path, cuda_available=False).run.preset == "gpu"
    assert load_config(path, preset="cpu-quick", cuda_available=True).run.preset == "cpu-quick"
    gpu = load_config(path, cuda_available=False)
    assert gpu.run.envs == PRESETS["gpu"]["run"]["envs"]


def test_auto_preset_respects_an_explicit_cpu_device() -> None:
    assert load_config(None, {"device": {"device": "cpu"}}).run.preset == "cpu-quick"


def test_unknown_preset_in_file_names_key_file_and_choices(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.toml", '[run]\npreset = "gpuu"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, cuda_available=False)
    problem = _only_problem(caught.value)
    assert (problem.key_path, problem.source) == ("run.preset", str(path))
    assert "did you mean gpu?" in problem.message and "auto, cpu-quick, gpu" in problem.message


def test_errors_name_the_layer_that_set_the_bad_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "run.toml", "[run]\nrounds = 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"run": {"rounds": -1}}, cuda_available=False, overrides_source="command line")
    assert _only_problem(caught.value).source == "command line"


def test_nothing_is_half_applied_and_inputs_are_untouched(tmp_path: Path) -> None:
    presets_before = json.dumps(PRESETS, default=dict, sort_keys=True)
    overrides = {"run": {"envs": 4}, "training": {"lr": "oops"}}
    snapshot = copy.deepcopy(overrides)
    path = _write(tmp_path, "run.toml", "[run]\nrounds = 9\n")

    with pytest.raises(ConfigError):
        load_config(path, overrides, cuda_available=False)

    assert overrides == snapshot
    assert json.dumps(PRESETS, default=dict, sort_keys=True) == presets_before
    fresh = load_config(cuda_available=False)
    assert (fresh.run.envs, fresh.run.rounds) == (
        PRESETS["cpu-quick"]["run"]["envs"],
        PRESETS["cpu-quick"]["run"]["rounds"],
    )


def test_loaded_config_is_frozen() -> None:
    cfg = load_config(cuda_available=False)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.run.envs = 9  # type: ignore[misc]


def test_setting_errors_name_the_key_when_built_in_python() -> None:
    with pytest.raises(SettingError, match=r"training\.momentum: must be in \[0.0, 1.0\)"):
        TrainingConfig(momentum=1.0)


def test_config_to_dict_is_json_with_lists_and_loads_back(tmp_path: Path) -> None:
    cfg = load_config(None, {"actions": {"blueprints": ["conv_light"]}}, cuda_available=False)
    data = config_to_dict(cfg)
    assert data["actions"]["tempos"] == list(cfg.actions.tempos) and data["actions"]["blueprints"] == ["conv_light"]
    path = _write(tmp_path, "resolved.json", json.dumps(data))
    assert load_config(path, cuda_available=False) == cfg


# ------------------------------------------------------------------------------------- plugin options
@attrs.frozen(kw_only=True)
class ThresholdOptions:
    threshold: float = 0.5
    patience: int = attrs.field(default=3, validator=v.instance_of(int))
    names: tuple[str, ...] = ("a",)


SPEC = PolicySpec(name="thresh", description="", factory=lambda options, context: None, options_type=ThresholdOptions)


def test_structure_options_builds_the_options_type() -> None:
    options = structure_options(SPEC, {"threshold": 1, "names": ["x", "y"]}, "policy.options")
    assert options == ThresholdOptions(threshold=1.0, names=("x", "y"))
    assert structure_options(SPEC, {}, "policy.options") == ThresholdOptions()


def test_structure_options_unknown_key_names_the_full_path_and_plugin() -> None:
    with pytest.raises(ConfigError) as caught:
        structure_options(SPEC, {"threshhold": 0.2}, "policy.options", source="run.toml")
    problem = _only_problem(caught.value)
    assert problem.key_path == "policy.options.threshhold"
    assert "did you mean threshold?" in problem.message and "policy 'thresh'" in problem.message
    assert problem.source == "run.toml"


def test_structure_options_type_error_names_the_expected_type() -> None:
    with pytest.raises(ConfigError) as caught:
        structure_options(SPEC, {"threshold": "high", "names": "abc"}, "policy.options")
    messages = {problem.key_path: problem.message for problem in caught.value.problems}
    assert messages["policy.options.threshold"].startswith("expected float, got str 'high'")
    assert messages["policy.options.names"].startswith("expected tuple[str, ...], got str 'abc'")


def test_structure_options_reports_plugin_validators() -> None:
    @attrs.frozen
    class Positive:
        steps: int = attrs.field(default=1, validator=v.ge(1))

    spec = PolicySpec(name="pos", description="", factory=lambda o, c: None, options_type=Positive)
    with pytest.raises(ConfigError, match=r"policy\.options: 'steps' must be >= 1: 0"):
        structure_options(spec, {"steps": 0}, "policy.options")


def test_structure_options_for_a_plugin_without_options() -> None:
    spec = PolicySpec(name="plain", description="", factory=lambda o, c: None)
    assert structure_options(spec, {}, "policy.options") == NoOptions()
    with pytest.raises(ConfigError, match=r"policy\.options\.anything: unknown key; no options are accepted here"):
        structure_options(spec, {"anything": 1}, "policy.options")
