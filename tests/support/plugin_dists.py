"""Throwaway installed distributions for plugin-discovery tests.

A ``<name>-<version>.dist-info`` folder with METADATA and ``entry_points.txt`` next to plain modules, in a
temporary directory put on ``sys.path``: ``importlib.metadata`` finds them exactly as it finds installed
packages, so discovery is tested through real entry points.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from typing import Iterator, Mapping

import pytest

BLUEPRINT_PLUGIN = """
from esper_core.hookspecs import hookimpl
from esper_core.specs import BlueprintSpec

@hookimpl
def esper_blueprints():
    return [BlueprintSpec(name={name!r}, description="test blueprint", factory=lambda channels, spatial: None)]
"""

RAISES_ON_IMPORT = """
raise RuntimeError("this plugin is broken on purpose")
"""


class PluginSite:
    """A temporary site directory; ``add`` writes one distribution with its plugin modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"p{abs(hash(root)) % 10**8}_"  # module names unique per test: sys.modules caches them

    def module(self, name: str) -> str:
        return self.prefix + name

    def add(
        self, distribution: str, version: str, entry_points: Mapping[str, str], modules: Mapping[str, str]
    ) -> None:
        """``entry_points``: entry name -> module short name; ``modules``: short name -> source."""
        for short, source in modules.items():
            (self.root / f"{self.module(short)}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        lines = ["[esper]", *(f"{entry} = {self.module(short)}" for entry, short in entry_points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        importlib.invalidate_caches()


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginSite]:
    """A site dir on sys.path; the built-in ``esper-grow`` entry points are disabled so only fakes load."""
    site = PluginSite(tmp_path / "site")
    site.root.mkdir()
    monkeypatch.syspath_prepend(str(site.root))
    monkeypatch.setenv("ESPER_DISABLE_PLUGINS", "esper-grow")
    for name in ("ESPER_DISABLE_PLUGIN_AUTOLOAD", "ESPER_TRACE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    yield site
    for module in [name for name in sys.modules if name.startswith(site.prefix)]:
        del sys.modules[module]
    importlib.invalidate_caches()
