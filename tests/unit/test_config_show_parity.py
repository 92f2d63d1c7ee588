"""`esper config show` accepts and refuses exactly what `esper run` does, with the same message: both run
``resolve_basis`` and ``plan_run`` (esper_core.run.setup), the checks that need the action space included."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from esper_core.cli import main

#: A run small enough for a unit test (one round of two steps on a tiny synthetic task).
TINY = (
    "--preset", "cpu-quick", "--device", "cpu", "--task", "synthetic", "--envs", "1", "--rounds", "1",
    "--episode-length", "2", "--set", "task.options.train_size=64", "--set", "task.options.val_size=32",
    "--set", "task.options.test_size=32",
)


def _both(tmp_path: Path, *args: str):
    """(config show, run) on the same flags; the run's directory under tmp_path/runs."""
    flags = (*TINY, "--data-dir", str(tmp_path), *args)
    shown = CliRunner().invoke(main, ["config", "show", *flags])
    ran = CliRunner().invoke(main, ["run", "--quiet", "--run-dir", str(tmp_path / "runs"), "--name", "r", *flags])
    return shown, ran


BAD = {
    "heuristic tempo outside actions.tempos": ("--policy", "heuristic", "--set", "policy.options.tempo=7"),
    "gpt host with an image task": ("--host", "gpt"),
    "heuristic prune speed not an alpha speed": ("--policy", "heuristic", "--set", 'policy.options.prune_speed="warp"'),
    "host option of the wrong length": ("--set", "host.options.widths=[8,16]"),
    "misspelt policy option": ("--set", "policy.options.entropy_warnn=0.2"),
    "reward option out of range": ("--set", "reward.options.rent_coef=-1"),
    "unknown blueprint": ("--set", 'actions.blueprints=["no_such_blueprint"]'),
    "unknown blend style": ("--set", 'actions.blend_styles=["no_such_style"]'),
    "unknown observer": ("--set", 'observers.enabled=["no_such_observer"]'),
}


@pytest.mark.parametrize("args", BAD.values(), ids=list(BAD))
def test_show_and_run_refuse_a_bad_config_with_the_same_message(args: tuple[str, ...], tmp_path: Path) -> None:
    shown, ran = _both(tmp_path, *args)
    assert shown.exit_code == ran.exit_code != 0, (shown.output, ran.output)
    assert shown.stderr == ran.stderr and shown.stderr.strip(), (shown.stderr, ran.stderr)
    assert shown.stdout == "" and not (tmp_path / "runs" / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_show_refuses_a_missing_cuda_device_as_run_does(tmp_path: Path) -> None:
    shown, ran = _both(tmp_path, "--device", "cuda")
    assert shown.exit_code == ran.exit_code != 0 and shown.stderr == ran.stderr
    assert "CUDA is not available" in shown.stderr


GOOD = {
    "defaults": (),
    "heuristic with a tempo of the action space": ("--policy", "heuristic", "--set", "policy.options.tempo=2"),
    "ppo_v2 with a changed option": ("--policy", "ppo_v2", "--set", "policy.options.clip_ratio=0.3"),
}


@pytest.mark.parametrize("args", GOOD.values(), ids=list(GOOD))
def test_show_and_run_accept_a_good_config(args: tuple[str, ...], tmp_path: Path) -> None:
    shown, ran = _both(tmp_path, *args)
    assert shown.exit_code == ran.exit_code == 0, (shown.output, ran.output)
    assert (tmp_path / "runs" / "r" / "summary.json").is_file()
