"""The configuration a run would really use, checked as a run checks it: ``check_setup`` makes every check
``build_run`` makes before a run's first round (the same functions), so a configuration shown is one a run
accepts and a refused one fails with the run's own message. What is shown is
``esper_core.run.config_document`` (the same document a run saves as ``config.toml``).
"""

from __future__ import annotations

from typing import Any

from esper_core.config.sections import EsperConfig
from esper_core.run.config_document import ConfigView, describe_config, plain_options, resolved_config
from esper_core.run.setup import check_setup

__all__ = ["ConfigView", "config_view", "plain_options", "resolved_config"]


def config_view(cfg: EsperConfig, registry: Any) -> ConfigView:
    """The view of ``cfg`` with ``task = "auto"`` resolved; raises exactly what ``build_run`` would
    (``ConfigError``, ``SetupError``, a plugin's own error) for a configuration a run refuses."""
    basis, skipped = check_setup(cfg, registry)
    resolved = basis.task.notice.split(";")[0] if basis.task.notice else None
    return describe_config(basis.config, registry, notes=[note for note in (resolved, skipped) if note])
