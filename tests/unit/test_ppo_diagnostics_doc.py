"""docs/ppo-diagnostics.md must explain every key an update reports and every warning it can raise."""

from __future__ import annotations

import re
from pathlib import Path

from esper_core.ops import HEADS, Op
from support.ppo_builders import policy, rollout

DOC = Path(__file__).resolve().parents[2] / "docs" / "ppo-diagnostics.md"
GROUPS = ("trunk", "critic", "q")


def _documented_keys() -> set[str]:
    keys: set[str] = set()
    for row in DOC.read_text().splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            keys |= set(re.findall(r"`([^`]+)`", first_cell))
    return keys


def _placeholder(key: str) -> str:
    name, _, suffix = key.partition("/")
    if suffix in HEADS or suffix in GROUPS:
        return f"{name}/<head>"
    if suffix in Op.__members__:
        return f"{name}/<OP>"
    return key


def test_every_reported_key_is_documented() -> None:
    p = policy()
    reported = {_placeholder(key) for key in p.update(rollout(p))}
    missing = reported - _documented_keys()
    assert not missing, f"document these in {DOC.name}: {sorted(missing)}"


def test_every_warning_the_diagnostics_can_raise_is_documented() -> None:
    source = (Path(__file__).resolve().parents[2] / "plugins/esper_policies/ppo_v2/diagnostics.py").read_text()
    raised = set(re.findall(r'found\.append\(\s*f?"([a-z_]+)[\[:]', source))
    assert {"entropy_low", "replay_mismatch", "kl_near_zero"} <= raised  # the pattern still finds them
    documented = {re.sub(r"\[.*", "", k) for k in _documented_keys()}
    assert raised <= documented, sorted(raised - documented)
