"""The run configuration: attrs sections (``sections``), strict layered loading (``loading``: defaults <
preset < host's adjustments < file < flags), the cattrs converter behind it (``converter``) and the presets (``presets``).

``esper_core.config.LifecycleConfig`` and the other section classes keep this import path."""

from esper_core.config.loading import ConfigError, ConfigProblem, config_to_dict, load_config, structure_options
from esper_core.config.presets import PRESET_CHOICES
from esper_core.config.sections import (
    ActionsConfig,
    DeviceConfig,
    EsperConfig,
    HostConfig,
    LifecycleConfig,
    ObserversConfig,
    PolicyConfig,
    RewardConfig,
    RunConfig,
    TaskConfig,
    TrainingConfig,
)
from esper_core.validators import IncompatibleSettings, SettingError

__all__ = [
    "ActionsConfig",
    "ConfigError",
    "ConfigProblem",
    "DeviceConfig",
    "EsperConfig",
    "HostConfig",
    "IncompatibleSettings",
    "LifecycleConfig",
    "ObserversConfig",
    "PRESET_CHOICES",
    "PolicyConfig",
    "RewardConfig",
    "RunConfig",
    "SettingError",
    "TaskConfig",
    "TrainingConfig",
    "config_to_dict",
    "load_config",
    "structure_options",
]
