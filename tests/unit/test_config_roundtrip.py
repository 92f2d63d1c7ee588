"""Properties: ``config_to_dict`` round-trips through ``load_config``; layer precedence holds for any mix."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from esper_core.config.toml import to_toml
from esper_core.config import (
    ActionsConfig,
    DeviceConfig,
    EsperConfig,
    HostConfig,
    LifecycleConfig,
    PolicyConfig,
    RunConfig,
    TrainingConfig,
)
from esper_core.config.loading import config_to_dict, load_config
from esper_core.ops import ALPHA_CURVES
from esper_core.config.presets import PRESETS

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
positive = st.integers(1, 10_000)
json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False) | names
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3), max_leaves=8)
options = st.dictionaries(names, json_values, max_size=4)


@st.composite
def configs(draw: st.DrawFn) -> EsperConfig:
    unique = lambda elements: st.lists(elements, min_size=1, max_size=4, unique=True).map(tuple)  # noqa: E731
    return EsperConfig(
        run=RunConfig(
            name=draw(st.none() | names),
            seed=draw(st.integers(0, 2**31)),
            preset=draw(st.sampled_from(sorted(PRESETS))),
            rounds=draw(positive),
            envs=draw(st.integers(1, 16)),
            episode_length=draw(positive),
        ),
        host=HostConfig(name=draw(names), options=draw(options)),
        policy=PolicyConfig(name=draw(names), options=draw(options)),
        training=TrainingConfig(
            batch_size=draw(positive),
            lr=draw(st.floats(0.0, 10.0)),
            epoch_samples=draw(st.none() | positive),
            val_samples=draw(st.none() | positive),
        ),
        lifecycle=LifecycleConfig(
            min_training_epochs=draw(st.integers(0, 9)),
            max_seeds=draw(st.integers(1, 9)),
            germinate_curve=draw(st.sampled_from(ALPHA_CURVES)),
        ),
        actions=ActionsConfig(
            blueprints=draw(st.none() | unique(names)),
            tempos=draw(unique(st.integers(0, 20))),
            alpha_targets=draw(unique(st.floats(0.01, 1.0))),
        ),
        device=DeviceConfig(devices=draw(st.lists(names, max_size=3).map(tuple)), threads=draw(st.none() | st.integers(1, 1024))),
    )


def _load_from(text: str, suffix: str, **kwargs: Any) -> EsperConfig:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"config{suffix}"
        path.write_text(text)
        return load_config(path, cuda_available=False, **kwargs)


@given(configs())
def test_config_to_dict_round_trips_through_a_json_file(cfg: EsperConfig) -> None:
    data = config_to_dict(cfg)
    text = json.dumps(data)  # JSON-able: tuples became lists
    assert "[" in json.dumps(data["actions"]["tempos"])
    assert _load_from(text, ".json") == cfg


@given(configs())
def test_config_to_dict_round_trips_as_overrides(cfg: EsperConfig) -> None:
    assert load_config(overrides=config_to_dict(cfg), cuda_available=False) == cfg


def _toml_safe(value: Any) -> bool:
    """TOML has no null: unset values inside option tables cannot be written."""
    if value is None:
        return False
    if isinstance(value, dict):
        return all(_toml_safe(item) for item in value.values())
    if isinstance(value, list):
        return all(_toml_safe(item) for item in value)
    return not (isinstance(value, float) and math.isnan(value))


@given(configs())
def test_rendered_toml_loads_back_to_the_same_config_where_toml_can_say_it(cfg: EsperConfig) -> None:
    loaded = _load_from(to_toml(config_to_dict(cfg)), ".toml")
    for section in ("lifecycle", "actions"):
        assert getattr(loaded, section) == getattr(cfg, section)
    if all(_toml_safe(v) for v in (cfg.host.options, cfg.policy.options)):
        assert loaded.host == cfg.host and loaded.policy == cfg.policy


@given(
    st.fixed_dictionaries(
        {layer: st.dictionaries(st.sampled_from(["episode_length", "rounds"]), positive, max_size=2) for layer in ("file", "cli")}
    ),
    st.sampled_from(sorted(PRESETS)),
)
def test_highest_layer_that_sets_a_key_wins(layers: dict[str, dict[str, int]], preset: str) -> None:
    overrides = {"run": layers["cli"]} if layers["cli"] else None
    cfg = _load_from(json.dumps({"run": layers["file"]}), ".json", overrides=overrides, preset=preset)
    for key in ("episode_length", "rounds", "envs"):
        expected = getattr(RunConfig(), key)
        expected = PRESETS[preset]["run"].get(key, expected)
        expected = layers["file"].get(key, expected)
        expected = layers["cli"].get(key, expected)
        assert getattr(cfg.run, key) == expected
