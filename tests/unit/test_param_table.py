"""docs/parameters.md is generated from the registry; it must match what the code builds today."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from support.benchmark_scripts import load_benchmark_script

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    return load_benchmark_script("param_table")


def test_committed_parameter_table_is_current() -> None:
    script = load_script()
    generated = script.render(script.builtin_registry(all_plugins=False))
    committed = (ROOT / "docs" / "parameters.md").read_text()
    assert committed == generated, "docs/parameters.md is stale: run `python benchmarks/param_table.py`"


def test_table_covers_every_builtin_host_slot_and_blueprint() -> None:
    script = load_script()
    registry = script.builtin_registry(all_plugins=False)
    text = script.render(registry)
    for host in registry.names("host"):
        assert f"### `{host}`" in text
    for blueprint in registry.names("blueprint"):
        fitting = [h for h in registry.names("host") if registry.get("blueprint", blueprint).supports(registry.get("host", h).topology)]
        assert text.count(f"| `{blueprint}` |") == len(fitting)
    assert "| `resnet` | 175,258 |" in text  # counted from the module, not typed
