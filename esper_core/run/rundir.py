"""The run directory: where one run keeps its config, events, metrics, checkpoints and summary.

```
runs/<name>/config.json     resolved config, plugins (names, distributions, versions), action layout
runs/<name>/events.jsonl    typed events (esper_core.run.telemetry)
runs/<name>/metrics.jsonl   one line per round: policy update metrics + env stats (+ timing)
runs/<name>/checkpoints/    round_NNNNN.pt, atomic (esper_core.run.checkpoint)
runs/<name>/summary.json    final numbers (also written on interrupt)
runs/<name>/report/         plots from ``esper report`` (when matplotlib is installed)
```
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import attrs


class RunDirError(Exception):
    """A run directory is missing, incomplete, or would be overwritten; the message says which path."""


def default_run_name(host: str, policy: str) -> str:
    return f"{host}-{policy}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)


@attrs.frozen
class RunDir:
    root: Path = attrs.field(converter=Path)

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def name(self) -> str:
        return self.root.name

    @classmethod
    def create(cls, parent: Path | str, name: str) -> "RunDir":
        """A new, empty run directory; refuses to reuse one that already holds a run."""
        if not name or "/" in name or name in {".", ".."}:
            raise RunDirError(f"run name {name!r} must be a single directory name (no '/')")
        root = Path(parent) / name
        if root.exists() and any(root.iterdir()):
            raise RunDirError(
                f"run directory {root} already exists and is not empty; pick another --name, "
                f"or continue it with `esper resume {root}`"
            )
        root.mkdir(parents=True, exist_ok=True)
        run = cls(root)
        run.checkpoints.mkdir(exist_ok=True)
        return run

    @classmethod
    def open(cls, path: Path | str) -> "RunDir":
        run = cls(Path(path))
        if not run.root.is_dir():
            raise RunDirError(f"no run directory at {run.root}")
        if not run.config_path.is_file():
            raise RunDirError(f"{run.root} is not a run directory: {run.config_path.name} is missing")
        return run

    def write_config(self, data: Mapping[str, Any]) -> None:
        write_json_atomic(self.config_path, data)

    def read_config(self) -> dict[str, Any]:
        return _read_json(self.config_path)

    def write_summary(self, data: Mapping[str, Any]) -> None:
        write_json_atomic(self.summary_path, data)

    def read_summary(self) -> dict[str, Any] | None:
        return _read_json(self.summary_path) if self.summary_path.is_file() else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise RunDirError(f"{path} is missing") from error
    except json.JSONDecodeError as error:
        raise RunDirError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise RunDirError(f"{path} must hold a JSON object")
    return data
