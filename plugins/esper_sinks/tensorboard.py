"""The ``tensorboard`` observer: a run's curves as TensorBoard event files under ``RUN_DIR/tensorboard``.

Switch it on with ``esper run --observer tensorboard`` (or ``observers.enabled = ["tensorboard"]``), then
``tensorboard --logdir RUN_DIR/tensorboard``. Needs the ``tensorboard`` package (``pip install
'esper-grow[tensorboard]'``); ``torch.utils.tensorboard`` writes the files.

Resuming: ``run_start`` says which round the run continues from; the writer opens with ``purge_step`` at
that round, so TensorBoard hides whatever an interrupted session had logged for rounds that are now
replayed, and every curve continues without duplicates. ``esper eval`` writes under ``.../eval`` (its own
TensorBoard run), so a later resume never purges evaluation points.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import attrs

from esper_core.api import check, positive

from esper_sinks.scalars import episode_scalars, eval_scalars, morphology_markdown, round_scalars, transition_line

INSTALL_HINT = "pip install 'esper-grow[tensorboard]'"


def _plain_name(value: Any) -> bool:
    return isinstance(value, str) and value not in {"", ".", ".."} and "/" not in value and "\\" not in value


@attrs.frozen(kw_only=True)
class TensorBoardOptions:
    """``observers.options.tensorboard``."""

    subdir: str = attrs.field(
        default="tensorboard", validator=check(_plain_name, "must be a plain folder name (no '/')"),
        metadata={"help": "folder under the run directory the event files go to"},
    )
    flush_secs: int = attrs.field(
        default=30, validator=positive, metadata={"help": "the writer flushes at least this often (seconds)"}
    )
    seed_text: bool = attrs.field(
        default=True, metadata={"help": "each episode's seed transitions as a text summary (tag seeds/env<N>)"}
    )


class TensorBoardObserver:
    """Opens a ``SummaryWriter`` on ``run_start`` / ``eval_start`` and writes every scalar at ``step = round``."""

    def __init__(self, options: TensorBoardOptions) -> None:
        self.options = options
        self._writer: Any = None
        self._transitions: dict[int, list[str]] = {}

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "run_start":
            self._open(event["run_dir"], None, event["resumed_at_round"], event)
            return
        if kind == "eval_start":  # evaluating the same round again replaces the earlier points
            self._open(event["run_dir"], "eval", event["round"], event)
            return
        if self._writer is None:  # no run directory: nothing to write to
            return
        if kind == "metrics":
            self._scalars(round_scalars(event), event["round"])
        elif kind == "episode_start":
            self._transitions[event["env"]] = []
        elif kind == "seed_transition":
            self._transitions.setdefault(event["env"], []).append(transition_line(event))
        elif kind == "episode_end":
            self._scalars(episode_scalars(event), event["round"])
            lines = self._transitions.pop(event["env"], [])
            if self.options.seed_text:
                text = "\n".join(f"    {line}" for line in lines) or "no seed events"
                self._writer.add_text(f"seeds/env{event['env']}", text, event["round"])
        elif kind == "eval_result":
            self._scalars(eval_scalars(event), event["round"])
            self._writer.add_text(f"eval/morphology/env{event['env']}", morphology_markdown(event["slots"]), event["round"])
        elif kind == "eval_end":
            self._scalars(eval_scalars(event), event["round"])
            self._writer.flush()
        elif kind == "report_written":
            self._figures(event["figures"], event["round"])
        elif kind in ("round_end", "run_end", "run_interrupted"):
            self._writer.flush()

    def _open(self, run_dir: str, sub: str | None, purge_step: int | None, event: dict[str, Any]) -> None:
        self.close()
        if not run_dir:
            return
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(run_dir) / self.options.subdir
        if sub is not None:
            folder = folder / sub
        # On a resume, purge_step hides what an earlier session logged for the rounds now replayed.
        self._writer = SummaryWriter(str(folder), purge_step=purge_step, flush_secs=self.options.flush_secs)
        self._writer.add_text("run/config", _config_text(event), purge_step or 0)

    def _figures(self, figures: dict[str, str], step: int) -> None:
        """The report's PNGs as images (``report/<name>``); a figure that cannot be read is skipped."""
        from matplotlib.image import imread  # the report needs matplotlib to have written any figure

        for name, path in figures.items():
            try:
                image = imread(path)
            except (OSError, ValueError):
                continue
            self._writer.add_image(f"report/{name}", image[..., :3], step, dataformats="HWC")
        self._writer.flush()

    def _scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._transitions = {}


def _config_text(event: dict[str, Any]) -> str:
    import json

    plugins = ", ".join(f"{kind} {name}" for kind, name in event.get("plugins", {}).items())
    return f"{event['run_name']}: {plugins}\n\n    " + json.dumps(event["config"], indent=2).replace("\n", "\n    ")


def make_tensorboard_observer(options: TensorBoardOptions) -> TensorBoardObserver:
    """Checks the optional dependency now, so a run that asked for TensorBoard fails before it starts."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ImportError(f"the tensorboard observer needs the tensorboard package: {INSTALL_HINT}")
    return TensorBoardObserver(options)
