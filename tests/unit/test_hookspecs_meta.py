"""Every hookspec is documented and exercised by some test (a new hook cannot ship untested)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from esper_core import hookspecs
from esper_core.hookspecs import KIND_HOOKS, OBSERVER_HOOKS, PROJECT
from esper_core.specs import SPEC_TYPES

TESTS = Path(__file__).resolve().parents[1]
HOOKSPECS = sorted(
    name for name, obj in vars(hookspecs).items() if callable(obj) and hasattr(obj, f"{PROJECT}_spec")
)


def _test_sources() -> str:
    this = Path(__file__).resolve()
    return "\n".join(path.read_text() for path in TESTS.rglob("test_*.py") if path.resolve() != this)


def test_hookspecs_are_found() -> None:
    assert len(HOOKSPECS) >= 7


@pytest.mark.parametrize("name", HOOKSPECS)
def test_hookspec_has_a_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and len(doc.split()) >= 5, f"hookspec {name} needs a docstring saying what to return and why"


@pytest.mark.parametrize("name", HOOKSPECS)
def test_hookspec_is_exercised_by_a_test(name: str) -> None:
    assert name in _test_sources(), f"no test mentions hookspec {name}: add one that implements it"


def test_every_kind_has_exactly_one_hook_and_every_hook_is_classified() -> None:
    assert set(KIND_HOOKS) == set(SPEC_TYPES)
    assert sorted([*KIND_HOOKS.values(), *OBSERVER_HOOKS]) == HOOKSPECS
