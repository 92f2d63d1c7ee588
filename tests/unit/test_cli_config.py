"""`esper config show`: the resolved configuration; bad files and flags fail naming key path and file."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from esper_core.cli import main
from esper_core.cli.config_view import config_view, plain_options, resolved_config
from esper_core.config import LifecycleConfig, RunConfig
from esper_core.plugins.loader import load_registry
from esper_core.validators import setting_help
from esper_core.cli.options import config_from_params, overrides_from_cli, parse_assignment, parse_value
from esper_core.config.loading import config_to_dict, load_config
from esper_core.config.presets import PRESETS


def _show(*args: str):
    return CliRunner().invoke(main, ["config", "show", "--preset", "cpu-quick", *args])


def _without_plugin_choices(data: dict) -> dict:
    """The config minus what `config show` resolves: the task name and the plugins' options tables."""
    data = json.loads(json.dumps(data))
    data["task"].pop("name")
    for section in ("task", "host", "policy", "reward"):
        data[section].pop("options")
    return data


def test_show_json_is_the_resolved_configuration_with_every_plugin_option(tmp_path: Path) -> None:
    result = _show("--json", "--data-dir", str(tmp_path))  # no dataset there: task auto picks synthetic
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert _without_plugin_choices(shown) == _without_plugin_choices(
        config_to_dict(load_config(preset="cpu-quick", overrides={"task": {"data_dir": str(tmp_path)}}))
    )
    assert shown["task"]["name"] == "synthetic"
    registry = load_registry()
    for kind in ("task", "host", "policy", "reward"):
        spec = registry.get(kind, shown[kind]["name"])
        assert shown[kind]["options"] == plain_options(spec.options_type()), kind  # every option, at its default
    assert shown["policy"]["options"]["clip_ratio"] == 0.2 and shown["host"]["options"]["widths"] == [16, 32, 64]


def test_show_toml_parses_and_loads_back_to_the_same_run(tmp_path: Path) -> None:
    result = _show("--envs", "3", "--set", "policy.options.lr=0.001")
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.stdout)["run"]["envs"] == 3
    saved = tmp_path / "saved.toml"
    saved.write_text(result.stdout)
    registry = load_registry()
    overrides = {"run": {"envs": 3}, "policy": {"options": {"lr": 0.001}}}
    original = config_view(load_config(preset="cpu-quick", overrides=overrides), registry)
    again = config_view(load_config(saved), registry)
    assert again.data == original.data  # showing what was shown changes nothing
    assert resolved_config(again) == resolved_config(original)
    assert load_config(saved).policy.options["lr"] == 0.001


def test_show_writes_each_setting_s_help_above_it() -> None:
    lines = _show("--policy", "ppo_v2").stdout.splitlines()
    registry = load_registry()
    sections = {"run": RunConfig, "lifecycle": LifecycleConfig, "policy.options": registry.get("policy", "ppo_v2").options_type,
                "host.options": registry.get("host", "resnet").options_type}
    for table, cls in sections.items():
        start = lines.index(f"[{table}]")
        body = lines[start + 1 : lines.index("", start)]
        for name, text in setting_help(cls).items():
            assert text, f"{table}.{name} has no help"
            found = [i for i, line in enumerate(body) if line.startswith(f"{name} =") or line.startswith(f"# {name}:")]
            above, at = (body, found[0]) if found else (lines, lines.index(f"[{table}.{name}]"))  # a table's help
            comment = []
            for line in reversed(above[:at]):
                if not line.startswith("# ") or line.startswith("# ") and ": unset" in line:
                    break
                comment.insert(0, line[2:])
            assert " ".join(comment) == text, (table, name)


@pytest.mark.parametrize(
    ("assignment", "problem"),
    [
        ("host.options.widths=[8,16]", "host.options.widths: expected 3 items (tuple[int, int, int]), got 2: [8, 16]"),
        ("policy.options.entropy_warnn=0.2", "policy.options.entropy_warnn: unknown key; did you mean entropy_warn?"),
        ("reward.options.rent_coef=-1", "reward.options: 'rent_coef' must be >= 0.0"),
        ("task.options.difficulty=2", "task.options: synthetic task option difficulty must lie in [0, 1]"),
    ],
)
def test_show_rejects_plugin_options_exactly_as_run_does(assignment: str, problem: str, tmp_path: Path) -> None:
    shown = _show("--set", assignment, "--data-dir", str(tmp_path))
    ran = CliRunner().invoke(
        main, ["run", "--preset", "cpu-quick", "--set", assignment, "--data-dir", str(tmp_path), "--run-dir",
               str(tmp_path / "runs"), "--set", "task.options.train_size=64", "--set", "task.options.val_size=32",
               "--set", "task.options.test_size=32", "--device", "cpu"],
    )
    assert shown.exit_code == ran.exit_code == 2, (shown.output, ran.output)
    assert problem in shown.stderr and problem in ran.stderr
    assert shown.stdout == "" and not (tmp_path / "runs").exists()


def test_show_names_an_unknown_plugin() -> None:
    result = _show("--host", "resnett")
    assert result.exit_code == 1 and "unknown host 'resnett'; did you mean resnet" in result.stderr


def test_flags_and_set_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[run]\nenvs = 3\nrounds = 2\n[policy]\nname = "heuristic"\n')
    result = _show("--json", "--config", str(path), "--rounds", "5", "--set", "training.lr=0.3", "--set", "run.name=\"x1\"")
    data = json.loads(result.stdout)
    assert (data["run"]["envs"], data["run"]["rounds"], data["run"]["name"]) == (3, 5, "x1")
    assert data["training"]["lr"] == 0.3 and data["policy"]["name"] == "heuristic"


@pytest.mark.parametrize("policy", ["heuristic", "ppo_v2"])
def test_no_policy_gets_a_ppo_section(policy: str) -> None:
    """The core has no PPO settings: ppo_v2's live in its own options, and no other policy sees them."""
    data = json.loads(_show("--json", "--policy", policy).stdout)
    assert "ppo" not in data and data["policy"]["name"] == policy


def test_an_old_ppo_key_names_its_new_home() -> None:
    result = _show("--set", "ppo.clip_ratio=0.3")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "ppo.clip_ratio: moved to policy.options.clip_ratio" in result.stderr


def test_preset_flag_selects_the_preset() -> None:
    result = CliRunner().invoke(main, ["config", "show", "--json", "--preset", "gpu"])
    assert json.loads(result.stdout)["run"]["envs"] == PRESETS["gpu"]["run"]["envs"]


def test_misspelt_key_in_file_fails_naming_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[training]\nseed_lrr = 0.2\n")
    result = _show("--config", str(path))
    assert result.exit_code != 0
    assert "training.seed_lrr" in result.stderr and str(path) in result.stderr and "did you mean seed_lr?" in result.stderr
    assert result.stdout == ""


def test_wrong_type_in_json_file_fails_naming_expected_type(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"training": {"batch_size": "large"}}')
    result = _show("--config", str(path))
    assert result.exit_code != 0
    assert "training.batch_size: expected int, got str 'large'" in result.stderr and str(path) in result.stderr


def test_bad_set_value_names_the_command_line() -> None:
    result = _show("--set", "run.envs=many")
    assert result.exit_code != 0
    assert "command line: run.envs: expected int, got str 'many'" in result.stderr


def test_malformed_set_is_a_usage_error() -> None:
    result = _show("--set", "no_equals_sign")
    assert result.exit_code == 2 and "KEY=VALUE" in result.stderr


def test_config_error_and_run_share_one_resolver(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[run]\nenvs = 0\n")
    with pytest.raises(click.ClickException) as caught:
        config_from_params({"config_path": str(path), "preset": "cpu-quick"})
    assert caught.value.exit_code == 2 and "run.envs" in caught.value.message


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("0.25", 0.25), ("true", True), ("null", None), ("[3, 5]", [3, 5]), ('"7"', "7"), ("resnet", "resnet"),
     ("'single'", "single"), ("{a = 1}", {"a": 1})],
)
def test_set_values_parse_as_json_then_toml_then_text(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_overrides_from_cli_nests_flags_then_assignments() -> None:
    overrides = overrides_from_cli(
        {"host": "tiny", "seed": None, "envs": 4},
        ["policy.options.prob_floors.op=0.2", "run.envs=6", "host.options.width=8"],
    )
    assert overrides == {
        "host": {"name": "tiny", "options": {"width": 8}},
        "run": {"envs": 6},
        "policy": {"options": {"prob_floors": {"op": 0.2}}},
    }
    assert parse_assignment("a.b.c=1") == {"a": {"b": {"c": 1}}}
