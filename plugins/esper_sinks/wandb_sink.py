"""The ``wandb`` observer: a run's curves in Weights & Biases, its local files under ``RUN_DIR/wandb``.

Switch it on with ``esper run --observer wandb``; needs ``pip install 'esper-grow[wandb]'`` and, to upload,
``wandb login`` (or ``WANDB_MODE=offline`` / ``observers.options.wandb.mode = "offline"``, then ``wandb
sync``). One W&B run per Esper run: its id is kept in ``RUN_DIR/wandb/esper-wandb.json`` with the last
round logged, so ``esper resume`` continues the same W&B run and does not log a replayed round twice
(replays are exact, so the values logged before are the right ones). ``esper eval`` logs to a W&B run of
its own (job type ``eval``, grouped with the training run), so it never disturbs the training steps.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import attrs

from esper_core.api import check

from esper_sinks.scalars import episode_scalars, eval_scalars, round_scalars, transition_line

INSTALL_HINT = "pip install 'esper-grow[wandb]'"
STATE_FILE = "esper-wandb.json"
_RUN_ID = re.compile(r"[a-z0-9]{1,64}")


def _names(value: Any) -> bool:
    return all(isinstance(item, str) and item for item in value)


@attrs.frozen(kw_only=True)
class WandbOptions:
    """``observers.options.wandb``."""

    project: str = attrs.field(
        default="esper", validator=check(lambda v: bool(v), "must not be empty"), metadata={"help": "W&B project"}
    )
    entity: str | None = attrs.field(default=None, metadata={"help": "W&B team or user; unset: your default entity"})
    mode: str | None = attrs.field(
        default=None,
        validator=check(lambda v: v in ("online", "offline", "disabled"), "must be online, offline or disabled", optional=True),
        metadata={"help": "online, offline or disabled; unset: W&B decides (WANDB_MODE, or online when logged in)"},
    )
    group: str | None = attrs.field(
        default=None,
        metadata={"help": "W&B group; unset: the run name (training and eval runs of one Esper run group together)"},
    )
    tags: tuple[str, ...] = attrs.field(
        default=(), validator=check(_names, "must be non-empty names"), metadata={"help": "W&B tags of the run"}
    )


@attrs.frozen(kw_only=True)
class RunState:
    """What ``RUN_DIR/wandb/esper-wandb.json`` remembers between sessions (untrusted: checked when read)."""

    id: str
    last_round: int | None  # the last round whose numbers were logged


def read_state(path: Path) -> RunState | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it to start a new W&B run") from None
    run_id, last = (data.get("id"), data.get("last_round")) if isinstance(data, dict) else (None, None)
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or not (last is None or type(last) is int):
        raise ValueError(f"{path} must hold {{'id': <lowercase letters and digits>, 'last_round': <int or null>}}")
    return RunState(id=run_id, last_round=last)


def write_state(path: Path, state: RunState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(attrs.asdict(state)) + "\n", encoding="utf-8")
    os.replace(temporary, path)


class WandbObserver:
    """Buffers one round (``metrics``, each ``episode_end``, the seed transitions) and logs it on ``round_end``
    as one W&B step (``step = round``)."""

    def __init__(self, options: WandbOptions) -> None:
        self.options = options
        self._run: Any = None
        self._state_path: Path | None = None
        self._state: RunState | None = None
        self._pending: dict[str, Any] = {}
        self._seed_rows: list[list[Any]] = []

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "run_start":
            self._start_training(event)
        elif kind == "eval_start":
            self._start_eval(event)
        elif self._run is None:
            return
        elif kind == "metrics":
            self._pending.update(round_scalars(event))
        elif kind == "episode_end":
            self._pending.update(episode_scalars(event))
        elif kind == "seed_transition":
            self._seed_rows.append([event["env"], event["episode"], transition_line(event)])
        elif kind == "round_end":
            self._log_round(event["round"])
        elif kind == "report_written":
            self._report(event["figures"])
        elif kind in ("eval_result", "eval_end"):
            self._pending.update(eval_scalars(event))
            if kind == "eval_end":
                self._run.log(self._pending)
                self._run.summary.update(self._pending)
                self._pending = {}

    # ------------------------------------------------------------------------------------------ runs
    def _init(self, run_dir: str, **kwargs: Any) -> Any:
        import wandb

        settings = wandb.Settings(console="off", silent=True)  # the run's own stdout stays untouched
        return wandb.init(
            project=self.options.project, entity=self.options.entity, mode=self.options.mode, dir=run_dir,
            tags=list(self.options.tags), reinit="create_new", settings=settings, **kwargs,
        )

    def _start_training(self, event: dict[str, Any]) -> None:
        self.close()
        if not event["run_dir"]:
            return
        self._state_path = Path(event["run_dir"]) / "wandb" / STATE_FILE
        state = read_state(self._state_path) if event["resumed_at_round"] is not None else None
        if state is None:
            state = RunState(id=secrets.token_hex(8), last_round=None)
        self._state = state
        write_state(self._state_path, state)
        self._run = self._init(
            event["run_dir"], id=state.id, name=event["run_name"], group=self.options.group or event["run_name"],
            job_type="train", resume="allow", config=event["config"],
        )

    def _start_eval(self, event: dict[str, Any]) -> None:
        self.close()
        if not event["run_dir"]:
            return
        self._run = self._init(
            event["run_dir"], name=f"{event['run_name']}-eval-r{event['round']}",
            group=self.options.group or event["run_name"], job_type="eval", config=event["config"],
        )

    def _report(self, figures: dict[str, str]) -> None:
        """The report's PNGs in the run's summary (``report/<name>``): summary, not history, so the rounds'
        steps stay one per round however often the run was resumed."""
        import wandb

        for name, path in figures.items():
            if Path(path).is_file():
                self._run.summary[f"report/{name}"] = wandb.Image(path)

    def _log_round(self, round_index: int) -> None:
        assert self._state is not None and self._state_path is not None
        last = self._state.last_round
        if last is None or round_index > last:  # a replayed round was logged already, with these values
            data = dict(self._pending)
            if self._seed_rows:
                import wandb

                data["seeds/transitions"] = wandb.Table(columns=["env", "episode", "event"], data=self._seed_rows)
            self._run.log(data, step=round_index)
            self._state = RunState(id=self._state.id, last_round=round_index)
            write_state(self._state_path, self._state)
        self._pending, self._seed_rows = {}, []

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
        self._pending, self._seed_rows = {}, []


def make_wandb_observer(options: WandbOptions) -> WandbObserver:
    """Checks the optional dependency now, so a run that asked for W&B fails before it starts."""
    if importlib.util.find_spec("wandb") is None:
        raise ImportError(f"the wandb observer needs the wandb package: {INSTALL_HINT}")
    return WandbObserver(options)
