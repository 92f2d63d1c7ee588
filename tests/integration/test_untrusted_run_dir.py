"""A shared run directory runs no code on ``esper eval`` / ``esper resume`` (issue 13): its checkpoint is
weights_only, and its saved config could select the cifar10 task with checksums off and a ``data_dir``
inside the run directory holding crafted pickles. Such a config is refused (data the run directory brings
along is not read), and even data pointed at on purpose (``--data-dir``) goes through the restricted
unpickler, so the crafted files fail as data instead of running."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from support.hostile_files import RunsCode
from support.run_configs import write_config

from esper_core.cli import main
from esper_core.run.checkpoint import latest_checkpoint, load_checkpoint
from esper_tasks.cifar10 import EXPECTED_FILES, FOLDER

RUN = {"policy": {"name": "random"}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 2, "rounds": 1, "envs": 1}}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    config = write_config(root, RUN)
    result = CliRunner().invoke(main, ["run", "--config", str(config), "--run-dir", str(root), "--name", "shared"])
    assert result.exit_code == 0, result.output
    return root / "shared"


def _hostile_cifar(folder: Path, marker: Path) -> Path:
    (folder / FOLDER).mkdir(parents=True)
    for name in EXPECTED_FILES:
        (folder / FOLDER / name).write_bytes(pickle.dumps({"data": RunsCode(marker), "labels": [0]}, protocol=2))
    return folder


def _shared_run(clean_run: Path, tmp_path: Path, marker: Path) -> Path:
    """The clean run, rewritten as an attacker would: cifar10, checksums off, data inside the run dir."""
    run = Path(shutil.copytree(clean_run, tmp_path / "shared"))
    _hostile_cifar(run / "data", marker)
    path = latest_checkpoint(run / "checkpoints")
    payload = load_checkpoint(path)
    payload["config"]["task"] = {
        "name": "cifar10", "data_dir": str(run / "data"), "download": False,
        "options": {"verify_checksums": False, "val_size": 1},
    }
    payload["plugins"]["task:cifar10"] = payload["plugins"].pop("task:synthetic")
    torch.save(payload, path)
    return run


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_saved_config_reading_data_from_inside_the_run_directory_is_refused(tmp_path, clean_run, command):
    marker = tmp_path / "code-ran"
    run = _shared_run(clean_run, tmp_path, marker)
    result = CliRunner().invoke(main, [command, str(run)])
    assert result.exit_code == 1, result.output
    assert "task.data_dir" in result.output and "inside the run directory" in result.output
    assert "--data-dir" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_crafted_data_pointed_at_explicitly_still_runs_nothing(tmp_path, clean_run):
    marker = tmp_path / "code-ran"
    run = _shared_run(clean_run, tmp_path, marker)
    elsewhere = _hostile_cifar(tmp_path / "elsewhere", marker)
    result = CliRunner().invoke(main, ["eval", str(run), "--data-dir", str(elsewhere)])
    assert result.exit_code == 1, result.output
    assert "refused to load the global" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_data_dir_outside_the_run_directory_is_accepted(tmp_path, clean_run):
    run = Path(shutil.copytree(clean_run, tmp_path / "copy"))
    result = CliRunner().invoke(main, ["eval", str(run), "--data-dir", str(tmp_path / "no-data-needed")])
    assert result.exit_code == 0, result.output
