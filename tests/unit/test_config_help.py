"""Every setting says what it is: core config sections and every built-in plugin's options carry one-line
help (``esper config show`` prints it), and a plugin's options written out in full load back unchanged."""

from __future__ import annotations

import attrs
import pytest

from esper_core.cli.config_view import plain_options
from esper_core.config import EsperConfig
from esper_core.config.loading import structure_options
from esper_core.plugins.loader import load_registry
from esper_core.validators import setting_help

REGISTRY = load_registry()
OPTION_KINDS = ("task", "host", "reward", "policy", "observer")
SPECS = [spec for kind in OPTION_KINDS for spec in REGISTRY.specs(kind).values() if attrs.fields(spec.options_type)]
#: Options without a default (the caller must give them), with a value to build one.
REQUIRED = {("task", "npz"): {"path": "data.npz"}}


@pytest.mark.parametrize("section", [field.name for field in attrs.fields(EsperConfig)])
def test_every_core_setting_has_help(section: str) -> None:
    helps = setting_help(type(getattr(EsperConfig(), section)))
    assert helps and all(len(text) > 10 for text in helps.values()), {k: v for k, v in helps.items() if len(v) <= 10}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: f"{spec.kind}:{spec.name}")
def test_every_built_in_plugin_option_has_help_and_round_trips(spec) -> None:
    helps = setting_help(spec.options_type)
    assert all(len(text) > 10 for text in helps.values()), {k: v for k, v in helps.items() if len(v) <= 10}
    given = REQUIRED.get((spec.kind, spec.name), {})
    options = structure_options(spec, given, f"{spec.kind}.options")
    assert structure_options(spec, plain_options(options), f"{spec.kind}.options") == options
