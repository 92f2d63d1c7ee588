"""The third-party example (examples/esper-blueprint-demo) works exactly as a plugin author's would.

It is really built and installed with pip (offline: no index, no build isolation, the venv's
setuptools), into a private target directory rather than the shared venv, so no other test (or other
process using the venv) ever sees ``conv_dilated``. Then: ``esper plugins --json`` lists it with its
distribution, the action space offers it, and it germinates into a host slot through the model API.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch

from esper_core.rl.actions import ActionSpace
from esper_core.config import ActionsConfig, LifecycleConfig, TrainingConfig
from esper_core.growth.model import MorphogeneticModel
from esper_core.plugins import load_registry
from esper_core.records import TaskInfo
from esper_core.stages import SeedStage

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "esper-blueprint-demo"
DISTRIBUTION = "esper-blueprint-demo"
PIP_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` the example into a fresh directory; returns the directory to put on the path."""
    work = tmp_path_factory.mktemp("example-plugin")
    source = work / "source"  # pip builds in-tree (build/, *.egg-info): keep the checkout clean
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    site = work / "site"
    command = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "--no-input", "--quiet", "--target", str(site), str(source),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    assert result.returncode == 0, f"pip install of the example failed:\n{result.stdout}\n{result.stderr}"
    assert list(site.glob("esper_blueprint_demo-*.dist-info")), f"no dist-info in {sorted(site.iterdir())}"
    return site


@pytest.fixture
def on_path(installed_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The installed example importable (and its entry point visible) in this process, for one test."""
    monkeypatch.syspath_prepend(str(installed_site))
    yield installed_site
    for module in [m for m in sys.modules if m == "esper_blueprint_demo" or m.startswith("esper_blueprint_demo.")]:
        del sys.modules[module]  # the path entry goes with monkeypatch; the imported modules go here


def subprocess_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def test_esper_plugins_json_lists_conv_dilated_with_its_distribution(installed_site: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "esper_core.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(installed_site),
    )
    assert result.returncode == 0, result.stderr
    plugins = json.loads(result.stdout)
    demo = [p for p in plugins if p["distribution"] == DISTRIBUTION]
    assert len(demo) == 1, plugins
    assert demo[0]["error"] is None and demo[0]["disabled"] is None
    assert demo[0]["version"] == "0.1.0"
    assert demo[0]["contributes"] == {"blueprint": ["conv_dilated"]}
    builtins = {name for p in plugins if p["distribution"] == "esper-grow" for name in p["contributes"].get("blueprint", [])}
    assert "conv_dilated" not in builtins and "conv_light" in builtins


def installed_in_environment() -> bool:
    try:
        importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(installed_in_environment(), reason=f"{DISTRIBUTION} is installed in this environment")
def test_without_the_install_conv_dilated_is_unknown() -> None:
    assert "conv_dilated" not in load_registry(environ={}).names("blueprint")


def test_conv_dilated_is_offered_by_the_action_space_and_germinates_into_a_slot(on_path: Path) -> None:
    registry = load_registry(environ={})
    contributor = registry.contributor("blueprint", "conv_dilated")
    assert (contributor.distribution, contributor.version) == (DISTRIBUTION, "0.1.0")

    host_spec = registry.get("host", "resnet_impaired")
    torch.manual_seed(0)
    host = host_spec.factory(host_spec.options_type(), TaskInfo("demo", 3, 16, 10))
    slots = tuple(point.name for point in host.slot_points())
    space = ActionSpace.from_registry(registry, host.topology, slots, ActionsConfig())
    blueprint_head = space.layout()["blueprint"]
    assert blueprint_head[0] == "noop" and blueprint_head[-1] == "conv_dilated"  # third parties after built-ins
    assert set(blueprint_head) >= {"conv_light", "conv_heavy", "attention"}

    model = MorphogeneticModel(
        host, registry.specs("blueprint"), registry.specs("blend_style"), LifecycleConfig(min_training_epochs=1),
        TrainingConfig(),
    ).train()  # fmt: skip
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    before = model(x).detach()
    transitions = model.germinate("r0c1", "conv_dilated", "linear_add", 2, 1.0)
    assert [t.to_stage for t in transitions] == [SeedStage.GERMINATED, SeedStage.TRAINING]
    assert type(model.slots["r0c1"].seed).__module__ == "esper_blueprint_demo.conv_dilated"
    assert model.seed_param_count() > 0

    out = model(x)
    assert torch.equal(out, before)  # function-preserving germination
    torch.nn.functional.cross_entropy(out, y).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.slots["r0c1"].seed_parameters())

    model.step_epoch()
    model.advance("r0c1")
    model.set_alpha_target("r0c1", 1.0, "instant")
    assert torch.allclose(model(x), before, rtol=0, atol=1e-6)  # a fresh seed is harmless even at alpha 1
