"""The "ship a blueprint in five minutes" quick start in docs/plugins.md installs exactly as written.

Every code block of that section whose first line names a file (``# my_seeds/plugin.py``) is written to a
temporary project, which pip builds and installs offline into a private target directory (as the
example-plugin test does); then ``esper plugins --json`` lists it, and its blueprint passes the contract.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
PIP_TIMEOUT_S = 300


def quick_start_files(text: str) -> dict[str, str]:
    section = text.split("## 1. ")[1].split("\n## 2. ")[0]
    files = {}
    for body in re.findall(r"```(?:python|toml)\n(.*?)```", section, re.S):
        first = body.partition("\n")[0].strip()
        match = re.fullmatch(r"# ([\w./-]+\.(?:py|toml))", first)
        if match:
            files[match.group(1)] = body
    return files


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("quickstart")
    files = quick_start_files(DOC.read_text())
    assert set(files) == {"my_seeds/dilated.py", "my_seeds/plugin.py", "my_seeds/__init__.py", "pyproject.toml"}
    for name, body in files.items():
        path = work / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    site = work / "site"
    command = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "--no-input", "--quiet", "--target", str(site), str(work / "src"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    assert result.returncode == 0, f"the quick start does not install:\n{result.stdout}\n{result.stderr}"
    return site


def test_the_quick_start_depends_on_esper_grow_never_on_esper() -> None:
    pyproject = quick_start_files(DOC.read_text())["pyproject.toml"]
    assert 'dependencies = ["esper-grow>=' in pyproject and 'version = "' in pyproject
    assert '"esper>' not in pyproject and '"esper"' not in pyproject


def test_the_installed_quick_start_is_listed_by_esper_plugins(installed: Path) -> None:
    env = {"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "esper_core.cli", "plugins", "--json"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    mine = [p for p in json.loads(result.stdout) if p["distribution"] == "my-seeds"]
    assert mine == [
        {"plugin": "my_seeds", "distribution": "my-seeds", "version": "0.1.0", "contributes": {"blueprint": ["my_dilated"]},
         "error": None, "hint": None, "disabled": None,
         "descriptions": {"blueprint": {"my_dilated": "Two dilated 3x3 convs through C/2 channels; output starts at 0."}}}
    ]  # fmt: skip
    check = "from my_seeds.dilated import SPEC; from esper_core.api import assert_blueprint_contract; assert_blueprint_contract(SPEC)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr  # the quick start's blueprint fulfils the contract too
