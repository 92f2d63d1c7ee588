"""Esper installs as ``esper-grow``: ``esper`` on PyPI is an unrelated project, so no doc, hint, example or
dependency line may name it; the version, the built-in plugins and old checkpoints follow the new name."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

import esper_core
from esper_core.plugins import BUILTIN_DISTRIBUTION, load_registry
from esper_core.run.checkpoint import CheckpointMismatchError, check_compatible

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("README.md", "pyproject.toml", "docs", "examples", "esper_core", "plugins", "benchmarks", "tests", ".ci")
SUFFIXES = {".md", ".py", ".toml", ".txt", ".cfg", ".sh", ""}
#: ``esper`` used as a requirement: with an extra or a version (``esper[report]``, ``esper>=0.1``) ...
REQUIREMENT = re.compile(r"(?<![\w./-])esper(\[[\w,-]*\]|\s*(>=|==|~=|<=|!=)\s*\d)")
#: ... or as what ``pip install`` fetches (``pip install esper``, ``pip install -U 'esper'``).
PIP_INSTALL = re.compile(r"pip install[^\n`]*?(?<![\w./-])['\"]?esper['\"]?(?=\s|$|`)")


def _text_files() -> list[Path]:
    files = []
    for entry in SCANNED:
        path = ROOT / entry
        candidates = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        files += [p for p in candidates if p.suffix in SUFFIXES and "__pycache__" not in p.parts and ".egg-info" not in str(p)]
    return files


def test_the_patterns_catch_what_would_install_the_wrong_project() -> None:
    for bad in ("pip install 'esper[report]'", 'dependencies = ["esper>=0.1"]', "pip install esper", "pip install -U esper\n"):
        assert REQUIREMENT.search(bad) or PIP_INSTALL.search(bad), bad
    for good in ("pip install 'esper-grow[report]'", '"esper-grow>=0.2"', "pip install -e .", "esper run", "[project.entry-points.esper]"):
        assert not (REQUIREMENT.search(good) or PIP_INSTALL.search(good)), good


def test_no_doc_hint_or_dependency_line_names_the_unrelated_esper_package() -> None:
    found = []
    this = Path(__file__).resolve()
    for path in _text_files():
        if path.resolve() == this:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if REQUIREMENT.search(line) or PIP_INSTALL.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "these would install the unrelated `esper` package:\n" + "\n".join(found)


def test_the_distribution_name_is_esper_grow_everywhere() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == esper_core.DISTRIBUTION == BUILTIN_DISTRIBUTION == "esper-grow"
    assert set(project["optional-dependencies"]) >= {"test", "report", "tensorboard", "wandb"}
    example = tomllib.loads((ROOT / "examples" / "esper-blueprint-demo" / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("esper-grow") for dep in example["dependencies"])


def test_the_installed_version_and_the_builtins_come_from_esper_grow() -> None:
    try:
        installed = importlib.metadata.version("esper-grow")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("esper-grow is not installed (running from a bare source tree)")
    assert esper_core.__version__ == installed
    builtins = [info for info in load_registry(environ={}).plugins if info.name in {"hosts", "sinks"}]
    assert {info.distribution for info in builtins} == {"esper-grow"}


def test_a_checkpoint_written_before_the_rename_still_resumes_but_another_distribution_does_not() -> None:
    layout = {"op": ["WAIT"]}
    saved = {"action_layout": layout, "plugins": {"policy:heuristic": {"distribution": "esper", "version": "0.1.0"}}}
    check_compatible("ck.pt", saved, layout, {"policy:heuristic": {"distribution": "esper-grow", "version": "0.2.0"}})
    with pytest.raises(CheckpointMismatchError, match="someone-else"):
        check_compatible("ck.pt", saved, layout, {"policy:heuristic": {"distribution": "someone-else", "version": "1"}})
