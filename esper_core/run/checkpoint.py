"""Checkpoint files: atomic write-then-rename, safe load and compatibility checks (the RNG states a
checkpoint holds are captured and restored by ``esper_core.run.seeding``).

Why ``weights_only``: a checkpoint is data, never code. Loading uses ``torch.load(weights_only=True)``,
so a payload may hold only tensors, plain containers and primitives; ``save_checkpoint`` checks that
before writing (naming the offending key) so a bad payload fails at save time, not at resume time.
Why atomic: a run killed mid-write must leave the previous checkpoint intact and the new one either
complete or absent (temporary file in the same directory, fsync, ``os.replace``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from esper_core.plugins.loader import BUILTIN_DISTRIBUTION, FORMER_BUILTIN_DISTRIBUTIONS
from esper_core.rl.actions import layout_diff
from esper_core.run.rundir import write_atomic

#: Bumped when the payload layout changes incompatibly.
CHECKPOINT_FORMAT = 1

_NAME = re.compile(r"^round_(\d{5,})\.pt$")
#: bytes are left out on purpose: ``torch.load(weights_only=True)`` refuses an empty ``b""``.
_PRIMITIVES = (str, int, float, bool, type(None))


class CheckpointError(Exception):
    """A checkpoint cannot be written, read or used; the message says which file and why."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint was written for another action-space layout or plugin set."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n  - ".join(self.problems)
        super().__init__(
            f"checkpoint {path} does not match this run:\n  - {lines}\n"
            "Resume with the same plugins and action settings (actions.*, --blueprints) the run was started with."
        )


# ------------------------------------------------------------------------------------------ file names
def checkpoint_path(directory: Path | str, round_index: int) -> Path:
    """``checkpoints/round_00003.pt``: the state after ``round_index`` completed rounds, i.e. where round
    ``round_index`` starts (rounds are numbered from 0)."""
    return Path(directory) / f"round_{round_index:05d}.pt"


def list_checkpoints(directory: Path | str) -> list[tuple[int, Path]]:
    """Complete checkpoint files, oldest first (temporary files of interrupted writes are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(directory: Path | str) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


#: What every checkpoint payload holds (a file without them is as unusable as a torn one).
REQUIRED_KEYS = ("round", "config", "plugins", "action_layout", "policy", "rng", "envs", "totals", "offsets")


def load_newest_intact(
    directory: Path | str, on_skip: Callable[[Path, CheckpointError], None] | None = None
) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint that loads and holds a whole payload; a damaged newer one (a bad disk, a bit
    flip, an edit) is reported through ``on_skip`` and passed over, never deleted. ``CheckpointError``
    when there is none at all."""
    found = list_checkpoints(directory)
    if not found:
        raise CheckpointError(f"{directory} holds no checkpoint; the run never finished its setup")
    failures = []
    for _, path in reversed(found):
        try:
            payload = load_checkpoint(path)
            missing = [key for key in REQUIRED_KEYS if key not in payload]
            if missing:
                raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
        except CheckpointError as error:
            failures.append(str(error))
            if on_skip is not None:
                on_skip(path, error)
            continue
        return path, payload
    raise CheckpointError(
        f"no checkpoint in {directory} is intact:\n  - " + "\n  - ".join(failures)
        + "\nThe run cannot be continued; start it again with `esper run`."
    )


def remove_old_checkpoints(directory: Path | str, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints (at least one)."""
    for _, path in list_checkpoints(directory)[: -max(1, keep)]:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------- save/load
def check_weights_only_safe(value: Any, where: str = "checkpoint") -> None:
    """Raise TypeError naming the key path of anything ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(value, (torch.Tensor, torch.Size, torch.dtype, torch.device)) or isinstance(value, _PRIMITIVES):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, _PRIMITIVES):
                raise TypeError(f"{where}: key {key!r} has type {type(key).__name__}; use str or int keys")
            check_weights_only_safe(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple, set)):
        for index, item in enumerate(value):
            check_weights_only_safe(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where} has type {type(value).__module__}.{type(value).__qualname__}, which torch.load(weights_only=True) "
        "refuses; store tensors, plain containers and primitives only"
    )


def save_checkpoint(path: Path | str, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` atomically: the file at ``path`` is either the old one, absent, or complete."""
    path = Path(path)
    check_weights_only_safe(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda handle: torch.save({"format": CHECKPOINT_FORMAT, **payload}, handle))
    return path


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load with ``weights_only=True`` onto the CPU; callers move tensors where they belong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}; this esper reads format {CHECKPOINT_FORMAT}")
    return payload


# ------------------------------------------------------------------------------------- compatibility
def compatibility_problems(
    saved: Mapping[str, Any], layout: Mapping[str, Sequence[Any]], plugins: Mapping[str, Any]
) -> list[str]:
    """Differences between a checkpoint and the run about to use it (empty when compatible).

    ``layout`` is ``ActionSpace.layout()``; ``plugins`` maps ``"kind:name"`` to ``{"distribution": ...,
    "version": ...}`` for every plugin the run uses. Names and contributing distributions must match;
    versions are compared by ``version_changes``, which callers report as warnings.
    """
    problems = layout_diff(layout, saved.get("action_layout", {}), here="this run", there="checkpoint")
    saved_plugins = saved.get("plugins", {})
    for key in sorted(set(saved_plugins) - set(plugins)):
        problems.append(f"plugin {key} ({_who(saved_plugins[key])}) was used by the checkpoint but is not used now")
    for key in sorted(set(plugins) - set(saved_plugins)):
        problems.append(f"plugin {key} ({_who(plugins[key])}) is used now but not by the checkpoint")
    for key in sorted(set(plugins) & set(saved_plugins)):
        was, now = saved_plugins[key].get("distribution"), plugins[key].get("distribution")
        if was != now and not (was in FORMER_BUILTIN_DISTRIBUTIONS and now == BUILTIN_DISTRIBUTION):  # a rename
            problems.append(f"plugin {key} came from {was!r} in the checkpoint, from {now!r} now")
    return problems


def version_changes(saved: Mapping[str, Any], plugins: Mapping[str, Any]) -> list[str]:
    """Plugins whose contributing distribution changed version since the checkpoint (a warning)."""
    saved_plugins = saved.get("plugins", {})
    changes = []
    for key in sorted(set(plugins) & set(saved_plugins)):
        was, now = saved_plugins[key].get("version"), plugins[key].get("version")
        if was != now:
            changes.append(f"plugin {key}: version {was} in the checkpoint, {now} now")
    return changes


def _who(info: Mapping[str, Any]) -> str:
    return f"{info.get('distribution')} {info.get('version')}"


def check_compatible(
    path: Path | str, saved: Mapping[str, Any], layout: Mapping[str, Sequence[Any]], plugins: Mapping[str, Any]
) -> None:
    problems = compatibility_problems(saved, layout, plugins)
    if problems:
        raise CheckpointMismatchError(path, problems)


def tensors_to_cpu(value: Any) -> Any:
    """Detached CPU copies of every tensor in a nested structure (a checkpoint must not alias live state)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {k: tensors_to_cpu(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(tensors_to_cpu(v) for v in value)
    if isinstance(value, list):
        return [tensors_to_cpu(v) for v in value]
    return value
